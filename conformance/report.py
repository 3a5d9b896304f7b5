"""The kit's results: one row per case (case, expected, got, result), printed as a table or written as JSON.

Outcomes: PASS; FAIL; SKIP (the case could not run here, with the reason as "got"); GAP (failed, but named
with --known-gap: a gap the operator knows about; it does not fail the run, and the table says so).
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TextIO

from conformance.seeds import Quote

PASS, FAIL, SKIP, GAP = "PASS", "FAIL", "SKIP", "GAP"


@dataclass
class Result:
    name: str
    quotes: tuple[Quote, ...]
    want: str  # what the case checks, in our words
    got: str = ""
    outcome: str = PASS
    seconds: float = 0.0

    @property
    def expected(self) -> str:
        return " + ".join(str(q) for q in self.quotes) + f" → {self.want}"


def failed(results: list[Result]) -> list[Result]:
    return [r for r in results if r.outcome == FAIL]


def print_table(results: list[Result], out: TextIO, *, width: int = 150) -> None:
    name_w = min(40, max((len(r.name) for r in results), default=4))
    rest = max(60, width - name_w - 10)
    exp_w, got_w = rest * 3 // 5, rest * 2 // 5
    line = f"{'case':<{name_w}}  {'expected':<{exp_w}}  {'got':<{got_w}}  result"
    print(line, file=out)
    print("-" * len(line), file=out)
    for r in results:
        exp = textwrap.wrap(r.expected, exp_w) or [""]
        got = textwrap.wrap(r.got, got_w) or [""]
        for i in range(max(len(exp), len(got))):
            print(
                f"{r.name if i == 0 else '':<{name_w}}  {exp[i] if i < len(exp) else '':<{exp_w}}  "
                f"{got[i] if i < len(got) else '':<{got_w}}  {r.outcome if i == 0 else ''}",
                file=out,
            )
    counts = {k: sum(r.outcome == k for r in results) for k in (PASS, FAIL, SKIP, GAP)}
    print("-" * len(line), file=out)
    print(", ".join(f"{v} {k.lower()}" for k, v in counts.items() if v or k in (PASS, FAIL)), file=out)


def write_json(results: list[Result], path: Path) -> None:
    rows = [
        {**asdict(r), "quotes": [{"seed": q.seed, "text": q.text} for q in r.quotes], "expected": r.expected}
        for r in results
    ]
    path.write_text(json.dumps(rows, indent=2))
