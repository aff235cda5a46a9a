"""Report renderers: escaping of hostile evidence, offline HTML, both languages, redaction, CSV,
terminal output. The fixture holds hostile strings on purpose (see tests/fixtures/report/)."""

from __future__ import annotations

import copy
import csv
import json
import re
import string
from html.parser import HTMLParser
from pathlib import Path

import pytest
from rich.console import Console

from turncoat.report import csv_hosts, html, i18n, redact, terminal
from turncoat.store.schema import VERDICTS

FIXTURE = Path(__file__).parent / "fixtures" / "report" / "sample-report.json"
SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
USERS = ("jdupont", "marie.lefebvre", "tmartin", "ahmed.benali", "k.nguyen")


@pytest.fixture()
def report() -> dict:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


@pytest.fixture()
def page(report: dict) -> str:
    return html.render_html(report)


# --- fixture ------------------------------------------------------------------------------------


def test_fixture_has_one_host_per_verdict_and_hostile_strings(report: dict) -> None:
    assert sorted(host["verdict"] for host in report["hosts"]) == sorted(VERDICTS)
    aliases = [alias for host in report["hosts"] for alias in host["aliases"]]
    assert SCRIPT in aliases and IMG in aliases
    for host in report["hosts"]:
        assert set(host["remediation"]) == {"en", "fr"}
        assert {"covers_window", "required", "sources", "gaps", "missing"} <= set(host["coverage"])
    assert any(host["coverage"]["gaps"] for host in report["hosts"])


# --- HTML: escaping and offline -----------------------------------------------------------------


class _Tags(HTMLParser):
    """Collects the tags and attributes a browser would see."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag


def _tags(page: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(page)
    return parser.tags


def test_html_escapes_hostile_strings(report: dict) -> None:
    for detail in (False, True):
        page = html.render_html(report, detail=detail)
        assert SCRIPT not in page
        assert "<script" not in page.lower()
        assert "<img" not in page.lower()
        assert not re.search(r"<[^>]*\sonerror\s*=", page, re.IGNORECASE)
        for tag, attrs in _tags(page):
            assert tag not in ("script", "img", "iframe", "object", "embed"), tag
            assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in page
        assert "3CX Desktop App &#34;18.12.416&#34; &amp; Updates &lt;beta&gt;" in page


def test_html_makes_control_and_bidi_characters_visible(page: str) -> None:
    assert "\x1b" not in page and "\u202e" not in page and "\x07" not in page
    assert "\\x1b" in page and "\\u202e" in page


def test_html_loads_nothing_from_the_network(report: dict) -> None:
    for detail in (False, True):
        page = html.render_html(report, detail=detail)
        assert "<link" not in page.lower()
        assert "@import" not in page
        assert not re.search(r"url\(\s*['\"]?(?!#|data:)", page)
        for tag, attrs in _tags(page):
            assert tag not in ("link", "script", "img", "iframe", "object", "embed", "base"), tag
            for name in ("src", "href", "xlink:href", "action", "srcset", "poster", "data"):
                if name in attrs:
                    assert (attrs[name] or "").startswith("#"), (tag, attrs)
        assert "default-src 'none'" in page
    default = html.render_html(report)
    assert "http://" not in default and "https://" not in default


def test_html_without_detail_shortens_urls_and_limits_rows(report: dict) -> None:
    short = html.render_html(report)
    full = html.render_html(report, detail=True)
    assert "raw.githubusercontent.com/…" in short
    assert "IconStorages/images/main/icon15.ico" not in short
    assert "https://raw.githubusercontent.com/IconStorages/images/main/icon15.ico" in full
    dev = next(host for host in report["hosts"] if host["host"] == "dev-07")
    hidden = len(dev["evidence"]) - html.MAX_ROWS
    assert hidden > 0
    assert f"{hidden} more rows hidden" in short
    assert "more rows hidden" not in full


def test_pick_evidence_keeps_every_stage_in_time_order(report: dict) -> None:
    dev = next(host for host in report["hosts"] if host["host"] == "dev-07")
    picked = html.pick_evidence(dev["evidence"], 5)
    assert len(picked) == 5
    assert {row["stage"] for row in picked} == {row["stage"] for row in dev["evidence"]}
    assert picked == sorted(picked, key=dev["evidence"].index)


# --- HTML: content ------------------------------------------------------------------------------


def test_html_renders_both_languages(report: dict) -> None:
    english = html.render_html(report, lang="en")
    french = html.render_html(report, lang="fr")
    assert '<html lang="en">' in english and "Data stolen" in english
    assert '<html lang="fr">' in french
    assert "Données volées" in french and "Que faire maintenant" in french
    # remediation comes from the report in the chosen language
    assert "Isolez cette machine" in french and "Isolez cette machine" not in english


def test_html_has_a_timeline_svg_per_host(page: str, report: dict) -> None:
    sections = re.split(r'<section class="host" id="host-\d+"', page)[1:]
    assert len(sections) == len(report["hosts"])
    for section in sections:
        assert "<svg" in section.split("</section>", 1)[0]


def test_html_starts_with_the_answer(page: str) -> None:
    assert page.index("4 of 7 machines show compromise evidence") < page.index('id="host-1"')
    assert page.index("What to do now") < page.index('id="host-1"')
    for host in ("fin-02", "dev-07", "wks-03", "wks-05", "sales-04", "recep-01", "acct-01"):
        assert host in page


def test_html_converts_times_to_the_requested_zone(report: dict) -> None:
    utc = html.render_html(report)
    paris = html.render_html(report, tz="Europe/Paris")
    # fin-02 first C2: 2023-03-09T07:52:00Z, CET is UTC+1 before the March DST change
    assert "9 Mar 2023, 07:52" in utc and "UTC" in utc
    assert "9 Mar 2023, 08:52" in paris and "Europe/Paris" in paris


def test_html_is_deterministic(report: dict) -> None:
    assert html.render_html(report, lang="fr") == html.render_html(copy.deepcopy(report), lang="fr")


def test_html_rejects_unknown_language_and_zone(report: dict) -> None:
    with pytest.raises(ValueError):
        html.render_html(report, lang="de")
    with pytest.raises(ValueError):
        html.render_html(report, tz="Mars/Olympus_Mons")


def test_write_html(tmp_path: Path, report: dict) -> None:
    path = html.write_html(report, tmp_path / "out" / "report.html", "fr", False, "UTC")
    assert path.read_text(encoding="utf-8") == html.render_html(report, lang="fr")


def test_html_renders_an_empty_report() -> None:
    page = html.render_html({"schema": "turncoat.report", "schema_version": 1, "hosts": []})
    assert i18n.t("headline.no_hosts", "en") in page


# --- redaction ----------------------------------------------------------------------------------


def _names(report: dict) -> set[str]:
    return {host["host"] for host in report["hosts"]} | {a for h in report["hosts"] for a in h["aliases"]}


def test_redact_leaves_no_host_or_user_name(report: dict) -> None:
    original = copy.deepcopy(report)
    redacted = redact.redact(report)
    text = json.dumps(redacted, ensure_ascii=False).casefold()
    for name in _names(report):
        assert json.dumps(name, ensure_ascii=False)[1:-1].casefold() not in text, name
    for user in USERS:
        assert user not in text, user
    assert report == original  # the input is not modified
    assert all(re.fullmatch(r"host-[0-9a-f]{8}", host["host"]) for host in redacted["hosts"])
    assert redacted["redacted"] is True


def test_redact_is_stable_and_consistent(report: dict) -> None:
    first, second = redact.redact(report), redact.redact(copy.deepcopy(report))
    assert first == second
    assert redact.redact(report, salt="another")["hosts"][0]["host"] != first["hosts"][0]["host"]
    for host in first["hosts"]:
        for row in host["evidence"]:
            if "/proxy/" not in row["evidence_path"]:
                assert host["host"] in row["evidence_path"]  # same pseudonym in the path
    fin = next(h for h in first["hosts"] if h["verdict"] == "data-stolen")
    user = re.search(r"user-[0-9a-f]{8}", fin["evidence"][0]["value"]).group(0)
    assert user in " ".join(fin["remediation"]["en"])  # same pseudonym in remediation text
    assert [h["verdict"] for h in first["hosts"]] == [h["verdict"] for h in report["hosts"]]
    assert first["evidence_files"][0]["sha256"] == report["evidence_files"][0]["sha256"]


def test_redacted_report_renders(report: dict) -> None:
    page = html.render_html(redact.redact(report))
    assert "acct-01" not in page and i18n.t("footer.redacted", "en") in page


def test_redact_does_not_touch_longer_names() -> None:
    report = {"hosts": [{"host": "wks-03", "aliases": [], "evidence": [],
                         "reason": "seen on wks-03 and wks-030, WKS-03.corp.example"}]}
    reason = redact.redact(report)["hosts"][0]["reason"]
    assert "wks-030" in reason and "wks-03 " not in reason and "WKS-03" not in reason


# --- CSV ----------------------------------------------------------------------------------------


def test_csv_round_trips(tmp_path: Path, report: dict) -> None:
    path = tmp_path / "hosts.csv"
    csv_hosts.write_hosts_csv(report, path)
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(report["hosts"])
    assert list(rows[0]) == list(csv_hosts.COLUMNS)
    by_host = {row["host"]: row for row in rows}
    for host in report["hosts"]:
        row = by_host[host["host"]]
        assert row["verdict"] == host["verdict"]
        assert row["reason"] == host["reason"]
        assert row["evidence_count"] == str(len(host["evidence"]))
        assert row["covers_window"] == str(host["coverage"]["covers_window"]).lower()
        assert row["first_execution"] == (host["first_execution"] or "")
    assert by_host["wks-03"]["campaigns"] == (
        "3cx-2023=c2-contact;generic:3CX Ltd/3CX Desktop App/18.12.416=c2-contact")
    first = path.read_bytes()
    csv_hosts.write_hosts_csv(report, path)
    assert path.read_bytes() == first


def test_csv_neutralises_formulas(tmp_path: Path) -> None:
    path = tmp_path / "hosts.csv"
    csv_hosts.write_hosts_csv({"hosts": [{"host": "=HYPERLINK(\"x\")", "reason": "@SUM(1)"}]}, path)
    with path.open(encoding="utf-8", newline="") as handle:
        row = next(csv.DictReader(handle))
    assert row["host"] == "'=HYPERLINK(\"x\")" and row["reason"] == "'@SUM(1)"


# --- i18n ---------------------------------------------------------------------------------------


def _fields(text: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(text) if field}


def test_catalogues_have_the_same_keys_and_placeholders() -> None:
    english, french = i18n.CATALOGUES["en"], i18n.CATALOGUES["fr"]
    assert set(english) == set(french)
    for key in english:
        assert english[key].strip() and french[key].strip(), key
        assert _fields(english[key]) == _fields(french[key]), key
    for verdict in VERDICTS:
        for lang in i18n.LANGS:
            assert i18n.t(f"verdict.{verdict}", lang)
            assert i18n.t(f"verdict.{verdict}.meaning", lang).endswith(".")


def test_t_fails_loudly() -> None:
    with pytest.raises(KeyError):
        i18n.t("no.such.key", "en")
    with pytest.raises(ValueError):
        i18n.t("app.title", "de")
    assert i18n.t("verdict.data-stolen", "fr") == "Données volées"


def test_dates_and_numbers_follow_the_language() -> None:
    assert i18n.fmt_ts("2023-04-01T07:05:00Z", "en") == "1 Apr 2023, 07:05"
    assert i18n.fmt_ts("2023-04-01T07:05:00Z", "fr", "Europe/Paris") == "1er avr. 2023 à 09:05"
    assert i18n.fmt_ts(None, "fr") == "—"
    assert i18n.fmt_int(48211, "fr") == "48\u202f211"
    assert i18n.tn("headline.compromised", 1, "fr", total="7").startswith("1 machine sur 7 présente")


# --- terminal -----------------------------------------------------------------------------------


def _terminal(report: dict, **kwargs: object) -> str:
    console = Console(record=True, width=120, force_terminal=False)
    terminal.render_summary(report, console, **kwargs)
    return console.export_text()


def test_terminal_lists_every_host(report: dict) -> None:
    text = _terminal(report)
    assert "4 of 7 machines show compromise evidence" in text
    for host in report["hosts"]:
        assert host["host"] in text
    assert "Evidence files: 19 (1 skipped)" in text
    assert "Read errors: 3" in text


def test_terminal_french_and_detail(report: dict) -> None:
    text = _terminal(report, lang="fr", detail=True)
    assert "Données volées" in text and "Preuves pour fin-02" in text
    assert "\x1b" not in text and "\u202e" not in text


def test_terminal_does_not_interpret_markup(report: dict) -> None:
    report["hosts"][0]["host"] = "[bold red]evil[/bold red]"
    report["hosts"][0]["reason"] = "[link=file:///etc/passwd]click[/link]"
    text = _terminal(report)
    assert "[bold red]evil[/bold red]" in text
    assert "[link=file" in text
