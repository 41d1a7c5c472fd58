"""Pages MkDocs builds from the code and the results (mkdocs-gen-files runs this at every build).

- reference/commands.md and reference/settings.md: from each command's parser (`owsd.commands.reference`);
- files/results/...: the figures and JSON of `results/`, so the result pages show the files a command wrote."""

from pathlib import Path

import mkdocs_gen_files

from owsd.commands.reference import commands_page, settings_page

REPO = Path(__file__).resolve().parents[1]
FIGURES_AND_DATA = {".png", ".svg", ".json", ".csv"}

with mkdocs_gen_files.open("reference/commands.md", "w") as page:
    page.write(commands_page())
with mkdocs_gen_files.open("reference/settings.md", "w") as page:
    page.write(settings_page())
for path in sorted((REPO / "results").rglob("*")):
    if path.suffix in FIGURES_AND_DATA:
        with mkdocs_gen_files.open(f"files/{path.relative_to(REPO).as_posix()}", "wb") as copy:
            copy.write(path.read_bytes())
