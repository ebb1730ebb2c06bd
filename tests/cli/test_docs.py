"""The shell examples of README.md and docs/ work when pasted: no comment after a line continuation
(``\\`` must end its line, or the next line runs as a command of its own)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md"), *(REPO / "bench").glob("*.md")])


def _shell_blocks(text: str) -> list[str]:
    return re.findall(r"```(?:bash|sh|shell|console)\n(.*?)```", text, flags=re.S)


#: A backslash followed by spaces and a comment, or by trailing spaces: no longer a line continuation.
_BROKEN_CONTINUATION = re.compile(r"\\[ \t]+(#.*)?$")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_shell_examples_paste_cleanly(doc: Path) -> None:
    for block in _shell_blocks(doc.read_text()):
        for line in block.splitlines():
            assert not _BROKEN_CONTINUATION.search(line), f"{doc.name}: {line!r}"


def test_the_old_broken_example_is_caught() -> None:
    broken = (
        "```bash\ncmr-monitor evaluate \\\n    --checkpoint my_ca.pt \\      # default\n    --out r/\n```\n"
    )
    (block,) = _shell_blocks(broken)
    assert [bool(_BROKEN_CONTINUATION.search(line)) for line in block.splitlines()] == [False, True, False]
