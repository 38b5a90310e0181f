"""The README's commands read files that exist (shipped, or written by an earlier README command) and write
only under scratch/ (git-ignored) or docs/ (the pictures it shows)."""
from __future__ import annotations

import re
import shlex

from conftest import ROOT

READS = {"--input", "--weights", "--init-state", "--trees"}
WRITES = {"-o", "--output", "--save-weights"}


def _commands():
    for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines():
        text = line.strip().removeprefix("$ ")
        if text.startswith(("rnncompile ", "python examples/")):
            yield shlex.split(text.split("  #")[0])


def test_readme_commands_read_real_files_and_write_under_scratch():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    made = set(re.findall(r"np\.savez\('([^']+)'", text))  # arrays the README's Python one-liners save
    problems = []
    for words in _commands():
        writes = WRITES | ({"--weights"} if words[1] == "import" else set())  # import writes its weights
        for flag, value in zip(words, words[1:]):
            if flag in writes:
                if not value.startswith(("scratch/", "docs/", "-")):
                    problems.append(f"{' '.join(words)}: writes {value} outside scratch/")
                made.add(value)
            elif flag in READS and value not in made and not (ROOT / value).exists():
                problems.append(f"{' '.join(words)}: reads {value}, which is neither shipped nor written before")
        for word in words[1:]:
            if re.fullmatch(r"(specs|examples|tests|docs)/[\w/.-]+\.(yaml|json|txt)", word) and \
                    not (ROOT / word).exists():
                problems.append(f"{' '.join(words)}: {word} is not shipped")
    assert problems == []


def test_scratch_is_ignored_by_git():
    assert "/scratch/" in (ROOT / ".gitignore").read_text().splitlines()
