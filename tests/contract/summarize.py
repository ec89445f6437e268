"""Sums up schemathesis' JUnit reports: failures per check, per operation and per cause.

Usage: python summarize.py REPORT_DIR...   (each holding junit-*.xml)

schemathesis prints every failure in full, and a count per check at the end
of each invocation; this adds tables over all invocations, so that what is
left to fix is on one screen:
- per check: how many failures;
- per operation: which checks failed on it (ST204, an undeclared method such
  as TRACE, is filed under an operation of the same path);
- per cause: the distinct reasons (the schema location a response broke, the
  error code and message of a refused request), with the operations that
  showed them.
"""

import collections
import json
import pathlib
import re
import sys
import xml.etree.ElementTree as ET

CASE_START = re.compile(r"^\d+\. Test Case ID: \S+$", re.MULTILINE)
FAILURE_LINE = re.compile(r"^- (ST\d+) (.+?)(?: \(\d+ violations\))?$", re.MULTILINE)
SCHEMA_AT = re.compile(
    r"^\s*(.+?)\n\n\s*Validated against the response schema for status code (\d+)\.\n\n\s*Schema at (\S+):",
    re.MULTILINE,
)
RESPONSE = re.compile(r"^\[(\d{3})\] [^\n]*:\n\n\s*`(.*)`$", re.MULTILINE)
REQUEST = re.compile(r"^\s*curl -X (\S+) .*?(?:https?://[^/\s]+)(/\S*?)'?$", re.MULTILINE)


UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
GENERIC = ("Expected:", "Valid data should", "Invalid data should", "Add `Allow` header")


def cause_of(code: str, title: str, case: str) -> list[str]:
    """One line per distinct reason a failure of `code` in this test case has."""
    if code == "ST108":
        return [
            f"{pointer} (in a {status} response): {message.strip()}"
            for message, status, pointer in SCHEMA_AT.findall(case)
        ] or ["?"]
    response = RESPONSE.search(case)
    status = response.group(1) if response else "no response"
    if code == "ST202" and response:
        # What the daemon said when it refused a valid request.
        try:
            error = json.loads(response.group(2))["error"]
            field = error.get("details", {}).get("field")
            detail = f"{error['code']}" + (f" ({field})" if field else "") + f": {error['message']}"
        except (ValueError, KeyError, TypeError, AttributeError):
            detail = response.group(2)[:120]
        # Generated values differ from case to case; keep the shape of the message.
        detail = re.sub(r'got \\?"[^"]*\\?"', "got …", detail)
        detail = re.sub(r"got (?:string|integer|map|sequence|null|boolean)\b.*", "got …", detail)
        return [f"{status} {detail}"]
    # Otherwise schemathesis' own description of the failure, below its title.
    block = case[case.index(f"- {code} {title}") :]
    block = block[len(f"- {code} {title}") : response.start() - case.index(f"- {code} {title}") if response else None]
    lines = [
        line.strip() for line in block.splitlines() if line.strip() and not line.strip().startswith(("- ST", *GENERIC))
    ]
    return [f"{status}: " + UUID.sub("{id}", " ".join(lines[:2]))]


def matches(operation: str, sent: str) -> bool:
    """Whether the request `sent` ("METHOD /api/v1/path") is one of `operation` ("METHOD /path/{id}")."""
    method, _, template = operation.partition(" ")
    pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
    return bool(re.fullmatch(f"{re.escape(method)} (?:/api/v1)?{pattern}", sent))


def main(directories: list[str]) -> int:
    per_check: collections.Counter[tuple[str, str]] = collections.Counter()
    per_operation: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    per_cause: dict[tuple[str, str], set[str]] = collections.defaultdict(set)
    reports = sorted(p for d in directories for p in pathlib.Path(d).glob("junit-*.xml"))
    if not reports:
        print("contract: no schemathesis report to sum up")
        return 1
    errors = 0
    for report in reports:
        for testcase in ET.parse(report).getroot().iter("testcase"):
            operation = testcase.get("name", "?")
            for element in [*testcase.iter("failure"), *testcase.iter("error")]:
                if element.tag == "error":
                    errors += 1
                    per_operation[operation]["error"] += 1
                    continue
                text = element.text or ""
                starts = [m.start() for m in CASE_START.finditer(text)] or [0]
                for start, end in zip(starts, [*starts[1:], len(text)], strict=True):
                    case = text[start:end]
                    # The last request of the reproduction is the one that failed.
                    requests = REQUEST.findall(case)
                    sent = (
                        UUID.sub("{id}", f"{requests[-1][0]} {requests[-1][1].split('?')[0]}")
                        if requests
                        else operation
                    )
                    for code, title in FAILURE_LINE.findall(case):
                        per_check[(code, title)] += 1
                        per_operation[operation][code] += 1
                        # The operation, unless the request went elsewhere (an undeclared
                        # method; a stateful scenario's last step).
                        where = operation if code != "ST204" and matches(operation, sent) else sent
                        for cause in cause_of(code, title, case):
                            per_cause[(code, cause)].add(where.replace("/api/v1", ""))
    total = sum(per_check.values())
    print()
    print("== contract: schemathesis failures over all invocations")
    if not total and not errors:
        print("none")
        return 0
    print(f"{total} failures, {errors} errors")
    print()
    print("per check:")
    for (code, title), count in sorted(per_check.items()):
        print(f"  {code} {title}: {count}")
    print()
    print("per operation:")
    width = max(len(operation) for operation in per_operation)

    # By path, then method; "Stateful tests" (no single operation) last.
    def order(name: str) -> tuple[bool, str, str]:
        method, _, path = name.partition(" ")
        return (not path.startswith("/"), path, method)

    for operation in sorted(per_operation, key=order):
        codes = ", ".join(
            f"{code} x{count}" if count > 1 else code for code, count in sorted(per_operation[operation].items())
        )
        print(f"  {operation:<{width}}  {codes}")
    print()
    print("per cause (and where it showed):")
    for (code, cause), where in sorted(per_cause.items()):
        shown = sorted(where)
        listed = ", ".join(shown[:4]) + (f", … ({len(shown)} in all)" if len(shown) > 4 else "")
        print(f"  {code} {cause}")
        print(f"        {listed}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
