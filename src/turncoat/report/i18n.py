"""Every word the terminal and HTML reports print, in English and French, plus date and number
formatting.

The people who read a turncoat report are often not security specialists (an office manager, the
accountant who doubles as IT), and in the organisations we target many of them read French first.
So labels live in one catalogue per language, never inline in renderers, and a test checks that both
catalogues have exactly the same keys: a label added in one language cannot be forgotten in the other.

`t()` raises `KeyError` on an unknown key on purpose: a typo must fail in tests, not print a raw key
to a worried reader. `label()` is the tolerant variant for values that come from the report itself
(a gap kind added in a later schema version must still render).
"""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

LANGS: tuple[str, ...] = ("en", "fr")

_EN: dict[str, str] = {
    # --- identity ---------------------------------------------------------------------------
    "app.title": "turncoat — compromise report",
    "app.subtitle": "Which machines the trojanized app reached, how far it got, and what to do.",
    # --- verdicts: short name, then one plain sentence for a non-specialist ---------------------
    "verdict.not-affected": "Not affected",
    "verdict.no-evidence": "Unknown — logs missing",
    "verdict.vulnerable-installed": "Trojanized app installed",
    "verdict.armed-dormant": "Armed, dormant",
    "verdict.c2-contact": "Contacted the attackers",
    "verdict.payload": "Attacker code delivered",
    "verdict.data-stolen": "Data stolen",
    "verdict.not-affected.meaning": (
        "The logs cover the whole risk period and show no trojanized version of the app on this "
        "machine."
    ),
    "verdict.no-evidence.meaning": (
        "This machine is known, but its logs do not cover the risk period, so it cannot be declared "
        "safe: collect what is listed as missing."
    ),
    "verdict.vulnerable-installed.meaning": (
        "A trojanized version of the app is installed but was never seen running: remove it before "
        "it runs."
    ),
    "verdict.armed-dormant.meaning": (
        "The trojanized app has run and is waiting before it calls the attackers: act before the "
        "expected activation date."
    ),
    "verdict.c2-contact.meaning": (
        "The machine contacted the attackers' servers, so they could send it more malicious code "
        "at any time."
    ),
    "verdict.payload.meaning": (
        "The attackers sent and ran more malicious code on this machine: treat it as under their "
        "control."
    ),
    "verdict.data-stolen.meaning": (
        "Traces show that data was taken from this machine (browser history, app settings): change "
        "the exposed passwords and sessions."
    ),
    # --- confidence -------------------------------------------------------------------------
    "confidence.high": "High",
    "confidence.medium": "Medium",
    "confidence.low": "Low",
    "confidence.high.meaning": "a known indicator or a signature-level fact",
    "confidence.medium.meaning": "behaviour that matches the attack's known steps",
    "confidence.low.meaning": "inferred without known indicators",
    # --- table headers ----------------------------------------------------------------------
    "col.host": "Machine",
    "col.verdict": "Verdict",
    "col.confidence": "Confidence",
    "col.first_execution": "First run",
    "col.first_c2": "First C2 contact",
    "col.last_c2": "Last C2 contact",
    "col.activation_eta": "Expected activation",
    "col.reason": "Why",
    "col.stage": "Stage",
    "col.time": "Time",
    "col.rule": "Rule",
    "col.match": "Field = value",
    "col.source": "Source (file, record)",
    "col.channel": "Log source",
    "col.kind": "Kind",
    "col.from": "From",
    "col.to": "To",
    "col.records": "Records",
    "col.days": "Days",
    "col.gap": "Gap",
    "col.start": "Start",
    "col.end": "End",
    "col.detail": "Detail",
    "col.path": "File",
    "col.reader": "Reader",
    "col.errors": "Errors",
    "col.sha256": "SHA-256",
    "col.count": "Machines",
    "col.campaign": "Campaign",
    # --- section titles ---------------------------------------------------------------------
    "section.answer": "The answer",
    "section.todo": "What to do now",
    "section.hosts": "Machines",
    "section.timeline": "Timeline",
    "section.coverage": "What the logs cover",
    "section.gaps": "Gaps in the logs",
    "section.missing": "What is missing",
    "section.evidence": "Evidence",
    "section.sigma": "Sigma detections",
    "section.changes": "What the new build changed",
    "changes.note": "Compared with the app's earlier versions on every machine; greyed rows are changes that are not findings on their own.",
    "col.change": "Change",
    "col.before": "Before",
    "col.after": "After",
    "change.padding": "data hidden in a signature",
    "change.signature": "module signer or signature changed",
    "change.foreign": "foreign module in the app's folder",
    "change.shell": "new shell started",
    "change.destination": "new destination",
    "section.beacons": "Beacon candidates",
    "beacons.line": "Beacon candidates: {count} rhythmic series ({established} there since the logs began); `turncoat beacons CASE` lists them.",
    "beacons.first": "First new one: {host} → {destination} every {period}.",
    "beacons.note": "Connections, requests or lookups that repeat on a rhythm. The bars count the gaps between beats in half-periods: one tall bar at 1 is a timer; bars at 2, 3… are missed beats.",
    "col.destination": "Destination",
    "col.score": "Score",
    "col.period": "Period",
    "col.jitter": "Jitter",
    "col.beats": "Beats",
    "col.hosts_sharing": "Machines",
    "col.intervals": "Gaps between beats",
    "section.browsers": "Browser profiles",
    "browsers.note": "Counts and domains only: turncoat never keeps the addresses visited.",
    "col.browser": "Browser",
    "col.profile": "Profile",
    "col.user": "User",
    "col.holds": "Holds",
    "col.domains": "Sites in history",
    "col.last_visit": "Last visit",
    "col.copies": "History copies",
    "section.pbx": "PBX client update folder",
    "pbx.note": "The installers and updates a self-hosted PBX could hand out to its clients.",
    "col.file": "File",
    "col.version": "Version",
    "col.build": "Build",
    "col.why": "Why",
    "build.trojanized": "trojanized",
    "build.clean": "clean",
    "build.unknown": "unknown",
    "section.fleet": "Same program, different contents",
    "fleet.note": "The same program, version and place on several machines, with different file contents: the odd machines deserve a look.",
    "col.place": "Place",
    "col.variants": "Variants (SHA-256 → machines)",
    "col.level": "Level",
    "col.hits": "Hits",
    "section.remediation": "What to do",
    "section.evidence_files": "Evidence files",
    "section.case": "About this case",
    "section.legend": "How to read this report",
    # --- one-screen answer ------------------------------------------------------------------
    "headline.compromised.one": "{n} of {total} machines shows compromise evidence.",
    "headline.compromised.other": "{n} of {total} machines show compromise evidence.",
    "headline.none": "None of the {total} machines shows compromise evidence.",
    "headline.installed.one": "{n} more has the trojanized app installed, never run.",
    "headline.installed.other": "{n} more have the trojanized app installed, never run.",
    "headline.uncleared.one": "{n} cannot be declared safe: its logs are incomplete.",
    "headline.uncleared.other": "{n} cannot be declared safe: their logs are incomplete.",
    "headline.clear.one": "{n} is not affected.",
    "headline.clear.other": "{n} are not affected.",
    "headline.no_hosts": "The report lists no machine.",
    "todo.machines": "Machines: {hosts}",
    "todo.nothing": "No machine needs action.",
    "todo.see_host": "Details and proof",
    "remediation.none": "The report gives no instructions for this machine.",
    # --- host card --------------------------------------------------------------------------
    "host.aliases": "Also seen as",
    "host.addresses": "Network addresses",
    "host.covers_window.yes": "The logs cover the whole exposure window.",
    "host.covers_window.no": "The logs do not cover the whole exposure window.",
    "host.required": "Period the logs must cover",
    "host.after_logs": "after the end of the logs",
    "host.activation_window": "possible between {earliest} and {latest}",
    "host.campaigns": "Campaigns",
    "host.no_gaps": "No gaps found.",
    "host.no_sources": "No usable log source for this machine.",
    # --- coverage words ---------------------------------------------------------------------
    "coverage.covers_window": "Covers the window",
    "coverage.yes": "yes",
    "coverage.no": "no",
    "coverage.sources": "Log sources",
    # --- gap kinds --------------------------------------------------------------------------
    "gap.record-id": "Missing records (numbering jumps)",
    "gap.time-hole": "Silent period (no events)",
    "gap.log-cleared": "Log was cleared",
    "gap.late-start": "Log starts too late",
    "gap.early-end": "Log ends too early",
    "gap.outside-window": "Log is outside the risk period",
    "gap.process-silence": "Process logging was off",
    # --- timeline ---------------------------------------------------------------------------
    "tl.first_execution": "first run",
    "tl.activation_eta": "expected activation",
    "tl.activation_window": "possible activation",
    "tl.first_c2": "first C2",
    "tl.exposure": "exposure window",
    "tl.required": "period to cover",
    "tl.evidence": "evidence",
    "tl.gap": "gap",
    "tl.coverage": "log coverage",
    "tl.alt": "Timeline of {host}",
    "tl.end_of_logs": "end of logs",
    "tl.zoom": "Zoom on this machine's activity, {start} → {end}:",
    "tl.stages": "Evidence by stage",
    # --- evidence ---------------------------------------------------------------------------
    "ev.none": "No evidence rows.",
    "ev.hidden.one": "{n} more row hidden: run with --detail to see all.",
    "ev.hidden.other": "{n} more rows hidden: run with --detail to see all.",
    "ev.shortened": "Web addresses are shortened to their site: run with --detail for full values.",
    "ev.record": "record {n}",
    "ev.line": "line {n}",
    "ev.more.one": "… {n} more row",
    "ev.more.other": "… {n} more rows",
    "ev.for": "Evidence for {host}",
    "ev.detail_hint": "Evidence rows and timelines: open the HTML report, or run with --detail.",
    # --- case -------------------------------------------------------------------------------
    "case.evidence_files": "Evidence files",
    "case.skipped.one": "{n} skipped",
    "case.skipped.other": "{n} skipped",
    "case.records": "Records",
    "case.triage_rows": "Triage artifacts (rows)",
    "case.network_records": "Network rows",
    "case.duplicates": "Duplicates collapsed",
    "case.errors": "Read errors",
    "case.span": "Events from {start} to {end}",
    "case.window": "Exposure window {start} → {end}",
    "case.dormancy": "dormancy {min} to {max} days (typically {typical})",
    # --- dates and numbers ------------------------------------------------------------------
    "date.none": "—",
    "date.utc_note": "Times in UTC.",
    "fmt.pair": "{label}: {value}",
    "date.format": "{d} {mon} {y}, {hh}:{mm}",
    "date.format.day": "{d} {mon} {y}",
    "date.day1": "1",
    "date.zone": "Times are shown in {zone}.",
    "month.1": "Jan",
    "month.2": "Feb",
    "month.3": "Mar",
    "month.4": "Apr",
    "month.5": "May",
    "month.6": "Jun",
    "month.7": "Jul",
    "month.8": "Aug",
    "month.9": "Sep",
    "month.10": "Oct",
    "month.11": "Nov",
    "month.12": "Dec",
    # --- footer -----------------------------------------------------------------------------
    "footer.generated": "Produced by turncoat {version} from {schema} version {schema_version}.",
    "footer.offline": "This file is self-contained: it loads nothing from the network.",
    "footer.redacted": "Machine and user names in this report are pseudonyms.",
}

_FR: dict[str, str] = {
    "app.title": "turncoat — rapport de compromission",
    "app.subtitle": (
        "Quelles machines l'application piégée a atteintes, jusqu'où elle est allée, et que faire."
    ),
    "verdict.not-affected": "Non touchée",
    "verdict.no-evidence": "Inconnu — journaux manquants",
    "verdict.vulnerable-installed": "Application piégée installée",
    "verdict.armed-dormant": "Armée, en sommeil",
    "verdict.c2-contact": "A contacté les attaquants",
    "verdict.payload": "Code malveillant livré",
    "verdict.data-stolen": "Données volées",
    "verdict.not-affected.meaning": (
        "Les journaux couvrent toute la période à risque et ne montrent aucune version piégée de "
        "l'application sur cette machine."
    ),
    "verdict.no-evidence.meaning": (
        "Cette machine est connue, mais ses journaux ne couvrent pas la période à risque : on ne "
        "peut donc pas la déclarer saine ; collectez ce qui est indiqué comme manquant."
    ),
    "verdict.vulnerable-installed.meaning": (
        "Une version piégée de l'application est installée mais n'a jamais été vue en "
        "fonctionnement : supprimez-la avant qu'elle ne s'exécute."
    ),
    "verdict.armed-dormant.meaning": (
        "L'application piégée s'est exécutée et attend avant de contacter les attaquants : agissez "
        "avant la date d'activation prévue."
    ),
    "verdict.c2-contact.meaning": (
        "La machine a contacté les serveurs des attaquants, qui pouvaient dès lors lui envoyer "
        "d'autres programmes malveillants à tout moment."
    ),
    "verdict.payload.meaning": (
        "Les attaquants ont envoyé et exécuté d'autres programmes malveillants sur cette machine : "
        "considérez qu'elle est sous leur contrôle."
    ),
    "verdict.data-stolen.meaning": (
        "Des traces montrent que des données ont été prises sur cette machine (historique du "
        "navigateur, réglages de l'application) : changez les mots de passe et sessions exposés."
    ),
    "confidence.high": "Élevée",
    "confidence.medium": "Moyenne",
    "confidence.low": "Faible",
    "confidence.high.meaning": "un indicateur connu ou un fait au niveau de la signature",
    "confidence.medium.meaning": "un comportement qui suit les étapes connues de l'attaque",
    "confidence.low.meaning": "une déduction sans indicateur connu",
    "col.host": "Machine",
    "col.verdict": "Verdict",
    "col.confidence": "Confiance",
    "col.first_execution": "Première exécution",
    "col.first_c2": "Premier contact C2",
    "col.last_c2": "Dernier contact C2",
    "col.activation_eta": "Activation prévue",
    "col.reason": "Pourquoi",
    "col.stage": "Étape",
    "col.time": "Date",
    "col.rule": "Règle",
    "col.match": "Champ = valeur",
    "col.source": "Source (fichier, enregistrement)",
    "col.channel": "Source de journal",
    "col.kind": "Type",
    "col.from": "Du",
    "col.to": "Au",
    "col.records": "Enregistrements",
    "col.days": "Jours",
    "col.gap": "Trou",
    "col.start": "Début",
    "col.end": "Fin",
    "col.detail": "Détail",
    "col.path": "Fichier",
    "col.reader": "Lecteur",
    "col.errors": "Erreurs",
    "col.sha256": "SHA-256",
    "col.count": "Machines",
    "col.campaign": "Campagne",
    "section.answer": "La réponse",
    "section.todo": "Que faire maintenant",
    "section.hosts": "Machines",
    "section.timeline": "Chronologie",
    "section.coverage": "Ce que couvrent les journaux",
    "section.gaps": "Trous dans les journaux",
    "section.missing": "Ce qui manque",
    "section.evidence": "Preuves",
    "section.sigma": "Détections Sigma",
    "section.changes": "Ce que la nouvelle version a changé",
    "changes.note": "Comparé aux versions précédentes de l'application sur tous les postes ; les lignes grisées sont des changements qui ne sont pas des constats à eux seuls.",
    "col.change": "Changement",
    "col.before": "Avant",
    "col.after": "Après",
    "change.padding": "données cachées dans une signature",
    "change.signature": "signataire ou signature d'un module changé",
    "change.foreign": "module étranger dans le dossier de l'application",
    "change.shell": "nouvel interpréteur lancé",
    "change.destination": "nouvelle destination",
    "section.beacons": "Balises possibles (beacons)",
    "beacons.line": "Balises possibles : {count} séries rythmées ({established} présentes depuis le début des journaux) ; `turncoat beacons CASE` les liste.",
    "beacons.first": "Première nouvelle : {host} → {destination} toutes les {period}.",
    "beacons.note": "Connexions, requêtes ou résolutions qui se répètent à un rythme. Les barres comptent les écarts entre battements par demi-période : une barre haute à 1 est une minuterie ; des barres à 2, 3… sont des battements manqués.",
    "col.destination": "Destination",
    "col.score": "Score",
    "col.period": "Période",
    "col.jitter": "Gigue",
    "col.beats": "Battements",
    "col.hosts_sharing": "Postes",
    "col.intervals": "Écarts entre battements",
    "section.browsers": "Profils de navigateur",
    "browsers.note": "Nombres et domaines seulement : turncoat ne garde jamais les adresses visitées.",
    "col.browser": "Navigateur",
    "col.profile": "Profil",
    "col.user": "Utilisateur",
    "col.holds": "Contient",
    "col.domains": "Sites dans l'historique",
    "col.last_visit": "Dernière visite",
    "col.copies": "Copies de l'historique",
    "section.pbx": "Dossier de mises à jour clientes du PBX",
    "pbx.note": "Les installateurs et mises à jour qu'un PBX auto-hébergé pouvait distribuer à ses clients.",
    "col.file": "Fichier",
    "col.version": "Version",
    "col.build": "Version livrée",
    "col.why": "Pourquoi",
    "build.trojanized": "piégée",
    "build.clean": "saine",
    "build.unknown": "inconnue",
    "section.fleet": "Même programme, contenu différent",
    "fleet.note": "Le même programme, dans la même version et au même endroit sur plusieurs postes, avec un contenu différent : les postes à part méritent un examen.",
    "col.place": "Emplacement",
    "col.variants": "Variantes (SHA-256 → postes)",
    "col.level": "Niveau",
    "col.hits": "Occurrences",
    "section.remediation": "Que faire",
    "section.evidence_files": "Fichiers de preuves",
    "section.case": "À propos de ce dossier",
    "section.legend": "Comment lire ce rapport",
    "headline.compromised.one": "{n} machine sur {total} présente des traces de compromission.",
    "headline.compromised.other": (
        "{n} machines sur {total} présentent des traces de compromission."
    ),
    "headline.none": "Aucune des {total} machines ne présente de trace de compromission.",
    "headline.installed.one": (
        "{n} autre a l'application piégée installée, jamais lancée."
    ),
    "headline.installed.other": (
        "{n} autres ont l'application piégée installée, jamais lancée."
    ),
    "headline.uncleared.one": (
        "{n} ne peut pas être déclarée saine : ses journaux sont incomplets."
    ),
    "headline.uncleared.other": (
        "{n} ne peuvent pas être déclarées saines : leurs journaux sont incomplets."
    ),
    "headline.clear.one": "{n} n'est pas touchée.",
    "headline.clear.other": "{n} ne sont pas touchées.",
    "headline.no_hosts": "Le rapport ne liste aucune machine.",
    "todo.machines": "Machines : {hosts}",
    "todo.nothing": "Aucune machine ne demande d'action.",
    "todo.see_host": "Détails et preuves",
    "remediation.none": "Le rapport ne donne aucune consigne pour cette machine.",
    "host.aliases": "Autres noms",
    "host.addresses": "Adresses réseau",
    "host.covers_window.yes": "Les journaux couvrent toute la fenêtre d'exposition.",
    "host.covers_window.no": "Les journaux ne couvrent pas toute la fenêtre d'exposition.",
    "host.required": "Période que les journaux doivent couvrir",
    "host.after_logs": "après la fin des journaux",
    "host.activation_window": "possible entre le {earliest} et le {latest}",
    "host.campaigns": "Campagnes",
    "host.no_gaps": "Aucun trou trouvé.",
    "host.no_sources": "Aucune source de journal utilisable pour cette machine.",
    "coverage.covers_window": "Couvre la fenêtre",
    "coverage.yes": "oui",
    "coverage.no": "non",
    "coverage.sources": "Sources de journaux",
    "gap.record-id": "Enregistrements manquants (numérotation interrompue)",
    "gap.time-hole": "Période silencieuse (aucun événement)",
    "gap.log-cleared": "Journal effacé",
    "gap.late-start": "Journal qui commence trop tard",
    "gap.early-end": "Journal qui s'arrête trop tôt",
    "gap.outside-window": "Journal hors de la période à risque",
    "gap.process-silence": "Journalisation des processus coupée",
    "tl.first_execution": "1re exécution",
    "tl.activation_eta": "activation prévue",
    "tl.activation_window": "activation possible",
    "tl.first_c2": "1er contact C2",
    "tl.exposure": "fenêtre d'exposition",
    "tl.required": "période à couvrir",
    "tl.evidence": "preuve",
    "tl.gap": "trou",
    "tl.coverage": "couverture des journaux",
    "tl.alt": "Chronologie de {host}",
    "tl.end_of_logs": "fin des journaux",
    "tl.zoom": "Zoom sur l'activité de cette machine, du {start} au {end} :",
    "tl.stages": "Preuves par étape",
    "ev.none": "Aucune preuve.",
    "ev.hidden.one": "{n} ligne de plus masquée : relancez avec --detail pour tout voir.",
    "ev.hidden.other": "{n} lignes de plus masquées : relancez avec --detail pour tout voir.",
    "ev.shortened": (
        "Les adresses web sont réduites à leur site : relancez avec --detail pour les valeurs "
        "complètes."
    ),
    "ev.record": "enregistrement {n}",
    "ev.line": "ligne {n}",
    "ev.more.one": "… {n} ligne de plus",
    "ev.more.other": "… {n} lignes de plus",
    "ev.for": "Preuves pour {host}",
    "ev.detail_hint": (
        "Preuves et chronologies : ouvrez le rapport HTML, ou relancez avec --detail."
    ),
    "case.evidence_files": "Fichiers de preuves",
    "case.skipped.one": "{n} ignoré",
    "case.skipped.other": "{n} ignorés",
    "case.records": "Enregistrements",
    "case.triage_rows": "Artefacts de triage (lignes)",
    "case.network_records": "Lignes réseau",
    "case.duplicates": "Doublons fusionnés",
    "case.errors": "Erreurs de lecture",
    "case.span": "Événements du {start} au {end}",
    "case.window": "Fenêtre d'exposition {start} → {end}",
    "case.dormancy": "sommeil de {min} à {max} jours (en général {typical})",
    "date.none": "—",
    "date.utc_note": "Heures en UTC.",
    "fmt.pair": "{label} : {value}",
    "date.format": "{d} {mon} {y} à {hh}:{mm}",
    "date.format.day": "{d} {mon} {y}",
    "date.day1": "1er",
    "date.zone": "Les heures sont indiquées en {zone}.",
    "month.1": "janv.",
    "month.2": "févr.",
    "month.3": "mars",
    "month.4": "avr.",
    "month.5": "mai",
    "month.6": "juin",
    "month.7": "juil.",
    "month.8": "août",
    "month.9": "sept.",
    "month.10": "oct.",
    "month.11": "nov.",
    "month.12": "déc.",
    "footer.generated": (
        "Produit par turncoat {version} à partir de {schema} version {schema_version}."
    ),
    "footer.offline": "Ce fichier est autonome : il ne charge rien depuis le réseau.",
    "footer.redacted": "Les noms de machines et d'utilisateurs de ce rapport sont des pseudonymes.",
}


def _fr_typography(text: str) -> str:
    """Put a no-break space before French high punctuation so `:` never starts a line."""
    return re.sub(r" ([:;!?»])", "\u00a0\\1", text).replace("« ", "«\u00a0")


CATALOGUES: dict[str, dict[str, str]] = {
    "en": _EN,
    "fr": {key: _fr_typography(value) for key, value in _FR.items()},
}


def _catalogue(lang: str) -> dict[str, str]:
    """The catalogue of `lang`; a clear error beats silently falling back to English."""
    try:
        return CATALOGUES[lang]
    except KeyError:
        raise ValueError(f"unsupported language {lang!r}; choose one of {', '.join(LANGS)}") from None


def t(key: str, lang: str) -> str:
    """The label `key` in `lang`. Unknown keys raise KeyError so typos fail loudly in tests."""
    return _catalogue(lang)[key]


def label(prefix: str, value: str, lang: str) -> str:
    """Label for a report value (verdict, gap kind…), falling back to the raw value.

    Values come from report.json, which may gain new kinds within schema version 1; showing the raw
    kind is better than failing the whole report.
    """
    return _catalogue(lang).get(f"{prefix}.{value}", value)


def tn(key: str, n: int, lang: str, **fields: object) -> str:
    """Plural-aware label: picks `key.one` or `key.other` and fills `{n}` and `fields`.

    French treats 0 and 1 as singular, English only 1.
    """
    one = n in (0, 1) if lang == "fr" else n == 1
    return t(f"{key}.{'one' if one else 'other'}", lang).format(n=fmt_int(n, lang), **fields)


def pair(name: str, value: object, lang: str) -> str:
    """`name: value`, with the space French puts before the colon."""
    return t("fmt.pair", lang).format(label=name, value=value)


def fmt_int(n: int, lang: str) -> str:
    """Thousands separators the reader expects: 48,211 in English, 48 211 in French."""
    text = f"{n:,}"
    return text.replace(",", "\u202f") if lang == "fr" else text


def zone(tz: str) -> ZoneInfo:
    """The ZoneInfo for `tz`, as ValueError on an unknown name so the CLI can say which."""
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {tz!r} (expected an IANA name such as Europe/Paris)") from None


def parse_ts(value: str | None) -> datetime | None:
    """Parse a report time (ISO-8601 UTC with `Z`); None for null or unparseable values."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=ZoneInfo("UTC"))


def fmt_ts(value: str | None, lang: str, tz: str = "UTC", style: str = "long") -> str:
    """Format a report time for people.

    `long` spells the month in the reader's language ("14 Mar 2023, 09:02"), `day` drops the time,
    `short` is ISO-like ("2023-03-14 09:02") and `iso-day` ("2023-03-14") for narrow terminal
    columns. An unparseable value is
    returned as-is rather than hidden: the reader should see what the report holds.
    """
    parsed = parse_ts(value)
    if parsed is None:
        return t("date.none", lang) if not value else str(value)
    local = parsed.astimezone(zone(tz))
    if style == "short":
        return local.strftime("%Y-%m-%d %H:%M")
    if style == "iso-day":
        return local.strftime("%Y-%m-%d")
    fields = {
        "d": t("date.day1", lang) if local.day == 1 else local.day,
        "mon": t(f"month.{local.month}", lang),
        "y": local.year,
        "hh": f"{local.hour:02d}",
        "mm": f"{local.minute:02d}",
    }
    return t("date.format.day" if style == "day" else "date.format", lang).format(**fields)


# Verdicts from which the trojanized code is known to have run: what "compromise evidence" means
# in the headline. `vulnerable-installed` (present, never ran) and `no-evidence` get their own clause.
COMPROMISED: tuple[str, ...] = ("armed-dormant", "c2-contact", "payload", "data-stolen")


def headline(counts: dict[str, int], lang: str) -> str:
    """The one sentence a non-specialist reads first, e.g. "4 of 7 machines show compromise evidence."

    Built from per-verdict host counts; the clauses about installed-only and uncleared machines are
    added only when such machines exist, so the sentence stays short when the news is simple.
    """
    total = sum(counts.values())
    if not total:
        return t("headline.no_hosts", lang)
    compromised = sum(counts.get(verdict, 0) for verdict in COMPROMISED)
    if compromised:
        parts = [tn("headline.compromised", compromised, lang, total=fmt_int(total, lang))]
    else:
        parts = [t("headline.none", lang).format(total=fmt_int(total, lang))]
    for key, verdict in (
        ("headline.installed", "vulnerable-installed"),
        ("headline.uncleared", "no-evidence"),
        ("headline.clear", "not-affected"),
    ):
        if counts.get(verdict):
            parts.append(tn(key, counts[verdict], lang))
    return " ".join(parts)
