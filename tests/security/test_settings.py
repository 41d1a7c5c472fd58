import pytest

from owsd.analysis.settings import AnalysisSettings
from owsd.errors import ConfigError
from owsd.security.settings import AttackSettings, KeyRecoverySettings, ReconstructionSettings, Resources


def test_defaults_are_valid_and_cover_every_attack():
    settings = AttackSettings()
    assert set(settings.attacks) == {"clustering", "label_leakage", "inversion", "reconstruction"} | {
        "key_recovery",
        "linkability",
    }
    settings.check_fits(images=5000, smallest_class=500)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: AttackSettings(attacks=["clustering", "brute_force"]), r"attack.attacks: unknown \['brute_force'\]"),
        (lambda: AttackSettings(margin=0.0), r"attack.margin=0.0 must be in \(0, 1\)"),
        (lambda: AttackSettings(margin=1.5), r"attack.margin=1.5 must be in \(0, 1\)"),
        (lambda: Resources(pairs=[100, 30]), r"attack.resources.pairs=\[100, 30\] must be ascending"),
        (lambda: Resources(submissions=[0, 10]), r"attack.resources.submissions=\[0, 10\] must be ≥ 1 each"),
        (lambda: Resources(public=0), "attack.resources.public=0 must be ≥ 2"),
        (lambda: AttackSettings(linkability_images=1), "attack.linkability_images=1 must be ≥ 2"),
        (lambda: ReconstructionSettings(input_size=48), "input_size=48 must be a power of two"),
        (lambda: AttackSettings(key_recovery=KeyRecoverySettings(invert_images=900)),
         "invert_images=900 exceeds resources.held_out"),
        (lambda: KeyRecoverySettings(channels=[4]), r"channels=\[4\] must be ≥ 8 each"),
    ],
)  # fmt: skip
def test_bad_settings_name_the_setting(build, message):
    with pytest.raises(ConfigError, match=message):
        build()


@pytest.mark.parametrize(
    "resources, message",
    [
        (Resources(submissions=[10, 6000]), "attack.resources.submissions asks for 6000, but the data holds 5000"),
        (Resources(labels_per_class=[500]), "attack.resources.labels_per_class asks for 500, but the data holds 499"),
        (Resources(pairs=[10, 4500]), "attack.resources.pairs asks for 4500, but the data holds 4000"),
    ],
)
def test_resources_beyond_the_data_are_refused_before_any_attack_runs(resources, message):
    with pytest.raises(ConfigError, match=message):
        AttackSettings(resources=resources).check_fits(images=5000, smallest_class=500)


def test_only_the_chosen_attacks_resources_must_fit_the_data():
    AttackSettings(attacks=["clustering"], resources=Resources(pairs=[10, 100_000])).check_fits(5000, 500)
    with pytest.raises(ConfigError, match="attack.resources.held_out \\+ resources.public asks for 6000"):
        AttackSettings(resources=Resources(held_out=3000, public=3000)).check_fits(images=5000, smallest_class=500)


def test_analysis_settings_are_checked():
    with pytest.raises(ConfigError, match="analysis.grid_images=0 must be ≥ 1"):
        AnalysisSettings(grid_images=0)
