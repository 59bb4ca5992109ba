"""Print the failed and erroring tests of pytest's JUnit XML files, one short block each.

``make test`` runs several passes whose output follows one another; a CI log that keeps only its
end would otherwise lose the names of a failed pass's tests (Makefile: run_tests, test).
Standard library only: it runs with whatever Python made the files.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

DETAIL_LINES = 6  # of each failure's text: enough for the assertion, not the whole traceback


def failures(path: Path) -> list[str]:
    """The failed or erroring test cases of one JUnit XML file, as printable blocks."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as err:
        return [f"{path}: unreadable ({err})"]
    found = []
    for case in root.iter("testcase"):
        for kind in ("failure", "error"):
            outcome = case.find(kind)
            if outcome is None:
                continue
            name = f"{case.get('classname', '')}::{case.get('name', '')}"
            text = (outcome.text or outcome.get("message") or "").strip().splitlines()
            detail = "\n".join(f"    {line}" for line in text[-DETAIL_LINES:])
            found.append(f"{kind.upper()} {name}\n{detail}")
    return found


def main(argv: list[str]) -> int:
    """Print the failures of every file named that exists; 1 if there were any."""
    blocks = [block for arg in argv if Path(arg).is_file() for block in failures(Path(arg))]
    for block in blocks:
        print(block)
    return 1 if blocks else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
