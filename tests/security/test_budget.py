import pytest

from owsd.security.budget import first_break, key_budget, linkability_verdict
from owsd.security.curves import Curve


def curve(threat: str, scrambled: list[float], chance: list[float], values=(10, 100, 1000), **kwargs) -> Curve:
    return Curve("attack", threat, "resource", list(values), "metric", scrambled, [1.0] * len(values), chance, **kwargs)


def test_an_attack_breaks_a_key_where_it_first_beats_chance_by_the_margin():
    assert first_break(curve("T3", [0.11, 0.2, 0.9], [0.1, 0.1, 0.1]), margin=0.05) == 1
    assert first_break(curve("T3", [0.11, 0.12, 0.14], [0.1, 0.1, 0.1]), margin=0.05) is None
    assert first_break(curve("T3", [0.5, 0.5, 0.5], [0.1, 0.1, 0.1]), margin=0.05) == 0


def test_budget_is_the_weakest_curve_and_says_when_it_is_only_a_lower_bound():
    safe = curve("T1", [0.1, 0.1, 0.1], [0.1, 0.1, 0.1])
    broken_late = curve("T3", [0.1, 0.1, 0.5], [0.1, 0.1, 0.1])
    broken_early = curve("T3", [0.1, 0.5, 0.9], [0.1, 0.1, 0.1])
    budget = key_budget([safe, broken_late, broken_early], margin=0.05)
    assert budget["T1"]["budget"] == 1000 and budget["T1"]["lower_bound_only"]
    assert budget["T3"]["budget"] == 10 and not budget["T3"]["lower_bound_only"]
    assert [e["broken_at"] for e in budget["T3"]["evidence"]] == [1000, 100]
    assert "T2" not in budget  # nothing measured, nothing claimed


def test_a_key_broken_at_the_smallest_resource_has_a_budget_of_zero():
    budget = key_budget([curve("T2", [0.9, 0.9, 0.9], [0.1, 0.1, 0.1])], margin=0.05)
    assert budget["T2"]["budget"] == 0 and budget["T2"]["evidence"][0]["broken_at"] == 10


def test_defence_budgets_read_the_defence_series_and_ignore_curves_without_it():
    defended = curve("T1", [0.9, 0.9, 0.9], [0.1, 0.1, 0.1], defences={"noise": [0.1, 0.1, 0.3]})
    other = curve("T1", [0.9, 0.9, 0.9], [0.1, 0.1, 0.1])
    assert key_budget([defended, other], 0.05)["T1"]["budget"] == 0
    assert key_budget([defended, other], 0.05, defence="noise")["T1"]["budget"] == 100


def test_curves_marked_out_of_the_budget_are_ignored():
    ari = curve("T1", [0.9, 0.9, 0.9], [0.0, 0.0, 0.0], budget=False)
    assert key_budget([ari], 0.05) == {}


@pytest.mark.parametrize("score, linkable", [(0.9, True), (0.03, False)])
def test_linkability_verdict_compares_each_change_with_the_false_match_rate(score, linkable):
    link = Curve("linkability", "T1", "change", ["same"], "match_rate", [score], [1.0], [0.01], budget=False)
    assert linkability_verdict(link, 0.05)["same"]["linkable"] is linkable


def test_an_attack_reaches_90_percent_of_its_unscrambled_gain_over_chance():
    rising = curve("T3", [0.2, 0.6, 0.95], [0.1, 0.1, 0.1])  # unscrambled 1.0: gain 0.9, 90% of it is 0.81
    assert rising.reaches_unscrambled == 1000
    assert curve("T3", [0.2, 0.3, 0.4], [0.1, 0.1, 0.1]).reaches_unscrambled is None
    flat = Curve("a", "T3", "r", [1, 2], "m", [0.5, 0.5], [0.1, 0.1], [0.2, 0.2])  # no gain without scrambling
    assert flat.reaches_unscrambled is None
    error = Curve("a", "T3", "r", [1, 2], "mse", [0.05, 0.012], [0.01, 0.01], [0.06, 0.06], higher_leaks=False)
    assert error.reaches_unscrambled == 2


def test_an_attack_that_never_broke_bounds_the_budget_only_up_to_where_it_was_tried():
    broke_late = curve("T3", [0.1, 0.1, 0.5], [0.1, 0.1, 0.1])  # safe up to 100
    short = curve("T3", [0.1, 0.1], [0.1, 0.1], values=(10, 30))  # never broke, tried up to 30 only
    verdict = key_budget([broke_late, short], margin=0.05)["T3"]
    assert verdict["budget"] == 30 and verdict["lower_bound_only"]
    assert verdict["limited_by"] == "attack (metric)"  # the attack that did break


def test_a_defence_budget_lists_the_attacks_it_did_not_measure():
    measured = curve("T1", [0.9] * 3, [0.1] * 3, defences={"noise": [0.1, 0.1, 0.1]})
    unmeasured = Curve("k-means on answers", "T1", "r", [10, 100, 1000], "nmi", [0.9] * 3, [1.0] * 3, [0.1] * 3)
    verdict = key_budget([measured, unmeasured], 0.05, defence="noise")["T1"]
    assert verdict["budget"] == 1000 and verdict["not_measured"] == ["k-means on answers (nmi)"]
