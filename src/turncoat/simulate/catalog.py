"""The benign software and Internet names of a small French law office.

Data only: what is installed (as Sysmon would describe each file), which names the programs resolve, and
what they resolve to. Keeping it here lets `noise.py` describe behaviour and nothing else.
"""

from __future__ import annotations

import hashlib

from .indicators import ATTACK_IPS, GITHUB_RAW, GITHUB_RAW_IPS
from .pe import Binary

_MS = "Microsoft Corporation"
_WINDOWS = "Microsoft® Windows® Operating System"
_WINVER = "10.0.19041.2604 (WinBuild.160101.0800)"
_OFFICE = "C:\\Program Files\\Microsoft Office\\root\\Office16\\"


def _windows(path: str, description: str, original: str) -> Binary:
    return Binary(path, _WINVER, description, _WINDOWS, _MS, original, "Microsoft Windows")


USERINIT = _windows("C:\\Windows\\System32\\userinit.exe", "Userinit Logon Application", "USERINIT.EXE")
EXPLORER = _windows("C:\\Windows\\explorer.exe", "Windows Explorer", "EXPLORER.EXE")
SVCHOST = _windows("C:\\Windows\\System32\\svchost.exe", "Host Process for Windows Services", "svchost.exe")
SERVICES = _windows("C:\\Windows\\System32\\services.exe", "Services and Controller app", "services.exe")
MSIEXEC = Binary(
    "C:\\Windows\\System32\\msiexec.exe", "5.0.19041.2193 (WinBuild.160101.0800)", "Windows® installer",
    "Windows Installer - Unicode", _MS, "msiexec.exe", "Microsoft Windows",
)
USO_WORKER = _windows("C:\\Windows\\System32\\MoUsoCoreWorker.exe", "MoUSO Core Worker Process", "MoUsoCoreWorker.exe")
CMD = _windows("C:\\Windows\\System32\\cmd.exe", "Windows Command Processor", "Cmd.Exe")
WHOAMI = _windows("C:\\Windows\\System32\\whoami.exe", "whoami - displays logged on user information", "whoami.exe")
IPCONFIG = _windows("C:\\Windows\\System32\\ipconfig.exe", "IP Configuration Utility", "ipconfig.exe")
SYSTEMINFO = _windows("C:\\Windows\\System32\\systeminfo.exe", "Displays system information", "sysinfo.exe")
#: Version resource of Microsoft's d3dcompiler_47.dll, which every Electron app ships beside itself (the name is no
#: indicator); each app's copy is declared with its own path.
D3DCOMPILER = Binary(
    "d3dcompiler_47.dll", "10.0.20348.1 (WinBuild.160101.0800)", "Direct3D HLSL Compiler",
    _WINDOWS, _MS, "D3DCOMPILER_47.DLL", _MS,
)

CHROME = Binary(
    "C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe", "110.0.5481.178", "Google Chrome",
    "Google Chrome", "Google LLC", "chrome.exe", "Google LLC",
)
EDGE = Binary(
    "C:\\Program Files (x86)\\Microsoft\\Edge\\Application\\msedge.exe", "110.0.1587.63", "Microsoft Edge",
    "Microsoft Edge", _MS, "msedge.exe", _MS,
)
BROWSERS = {"chrome": CHROME, "msedge": EDGE}

OUTLOOK = Binary(_OFFICE + "OUTLOOK.EXE", "16.0.16130.20306", "Microsoft Outlook", "Microsoft Office", _MS, "Outlook.exe", _MS)
WINWORD = Binary(_OFFICE + "WINWORD.EXE", "16.0.16130.20306", "Microsoft Word", "Microsoft Office", _MS, "WinWord.exe", _MS)
EXCEL = Binary(_OFFICE + "EXCEL.EXE", "16.0.16130.20306", "Microsoft Excel", "Microsoft Office", _MS, "Excel.exe", _MS)
ACROBAT = Binary(
    "C:\\Program Files\\Adobe\\Acrobat DC\\Acrobat\\Acrobat.exe", "22.3.20322.0", "Adobe Acrobat",
    "Adobe Acrobat", "Adobe Systems Incorporated", "Acrobat.exe", "Adobe Inc.",
)

_TEAMS_DIR = "{home}\\AppData\\Local\\Microsoft\\Teams\\current\\"
TEAMS = Binary(_TEAMS_DIR + "Teams.exe", "1.6.00.4472", "Microsoft Teams", "Microsoft Teams", _MS, "Teams.exe", _MS)
#: Teams is Electron too: its own ffmpeg.dll and d3dcompiler_47.dll, same names as 3CX's, other hashes.
TEAMS_FFMPEG = Binary(_TEAMS_DIR + "ffmpeg.dll", signer=_MS)
TEAMS_D3DCOMPILER = Binary(
    _TEAMS_DIR + "d3dcompiler_47.dll", D3DCOMPILER.version, D3DCOMPILER.description, D3DCOMPILER.product,
    _MS, D3DCOMPILER.original, _MS,
)

ONEDRIVE = Binary(
    "{home}\\AppData\\Local\\Microsoft\\OneDrive\\OneDrive.exe", "23.038.0219.0001", "Microsoft OneDrive",
    "Microsoft OneDrive", _MS, "OneDrive.exe", _MS,
)
ONEDRIVE_UPDATER = Binary(
    "{home}\\AppData\\Local\\Microsoft\\OneDrive\\OneDriveStandaloneUpdater.exe", "23.038.0219.0001",
    "Standalone Updater", "Microsoft OneDrive", _MS, "OneDriveStandaloneUpdater.exe", _MS,
)
GOOGLE_UPDATE = Binary(
    "C:\\Program Files (x86)\\Google\\Update\\GoogleUpdate.exe", "1.3.36.152", "Google Installer",
    "Google Update", "Google LLC", "GoogleUpdate.exe", "Google LLC",
)

#: Sites the lawyers browse, with a relative weight. raw.githubusercontent.com is here on purpose: a
#: browser fetching it is innocent; only 3CXDesktopApp.exe fetching it is a campaign behaviour.
BROWSING: dict[str, int] = {
    "www.google.com": 30,
    "www.legifrance.gouv.fr": 25,
    "www.doctrine.fr": 12,
    "www.dalloz.fr": 10,
    "www.lexis360.fr": 8,
    "www.e-barreau.fr": 8,
    "www.infogreffe.fr": 6,
    "www.societe.com": 6,
    "www.service-public.fr": 5,
    "www.impots.gouv.fr": 4,
    "www.cnb.avocat.fr": 4,
    "www.lemonde.fr": 6,
    "www.lefigaro.fr": 4,
    "www.linkedin.com": 4,
    "www.youtube.com": 3,
    "fonts.gstatic.com": 5,
    "accounts.google.com": 3,
    "github.com": 1,
    GITHUB_RAW: 1,
}

#: Names with a CNAME in their answer, as Sysmon writes it before the addresses.
_CNAMES = {
    "outlook.office365.com": "outlook.ms-acdc.office.com",
    "teams.microsoft.com": "teams-office-com.s-0005.s-msedge.net",
    "www.linkedin.com": "www-linkedin-com.l-0005.l-msedge.net",
    "www.lemonde.fr": "www.lemonde.fr.cdn.cloudflare.net",
    "fe3cr.delivery.mp.microsoft.com": "glb.cws.prod.dcat.dsp.mp.microsoft.com",
}

_FIRST_OCTETS = (13, 20, 23, 34, 40, 51, 52, 104, 142, 151, 172, 213)


def _standin_ip(name: str, salt: int = 0) -> str:
    """A public-looking address for a benign name, stable across runs and never an attack address."""
    while True:
        digest = hashlib.sha256(f"{name}#{salt}".encode()).digest()
        ip = f"{_FIRST_OCTETS[digest[0] % len(_FIRST_OCTETS)]}.{digest[1]}.{digest[2]}.{1 + digest[3] % 253}"
        if ip not in ATTACK_IPS:
            return ip
        salt += 1


def resolve(name: str) -> tuple[str | None, tuple[str, ...]]:
    """What a benign name resolves to: (CNAME or None, addresses)."""
    if name == GITHUB_RAW:
        return None, GITHUB_RAW_IPS[:2]
    return _CNAMES.get(name), (_standin_ip(name),)


#: Where the 3CX client lives (per-user install); ffmpeg.dll, d3dcompiler_47.dll and manifest sit beside it.
THREECX_ROOT = "{home}\\AppData\\Local\\Programs\\3CXDesktopApp"
THREECX_APP_DIR = THREECX_ROOT + "\\app"
THREECX_EXE = THREECX_APP_DIR + "\\3CXDesktopApp.exe"

#: The office's hosted 3CX phone system (tenant suffix my3cx.fr: hosted instances listen on 443).
PBX_TENANT = "cabinet-dupont.my3cx.fr"
#: Where the 3CX installer is downloaded from.
THREECX_DOWNLOADS = "downloads-global.3cx.com"
#: The office's file server: network logons (4624 type 3) come from it.
FILE_SERVER_IP = "192.168.10.5"

#: Packages installed by MSI now and then (name, version, manufacturer): ordinary Application-log noise.
MSI_PRODUCTS: tuple[tuple[str, str, str], ...] = (
    ("Adobe Acrobat Reader DC - Français", "22.003.20322", "Adobe Systems Incorporated"),
    ("Microsoft Teams Meeting Add-in for Microsoft Office", "1.0.22304.2", "Microsoft"),
    ("Google Chrome", "110.0.5481.178", "Google LLC"),
    ("Microsoft Edge Update", "1.3.173.45", "Microsoft Corporation"),
    ("RPVA Navigateur Sécurisé", "4.2.1", "Conseil National des Barreaux"),
    ("7-Zip 22.01 (x64 edition)", "22.01.00.0", "Igor Pavlov"),
)

#: Documents the lawyers open (folder under Documents, file name).
DOCUMENTS: tuple[str, ...] = (
    "Dossiers\\SCI Marceau\\assignation_v2.docx",
    "Dossiers\\SCI Marceau\\bordereau_pieces.docx",
    "Dossiers\\Lefevre c. Batiplus\\conclusions_v4.docx",
    "Dossiers\\Lefevre c. Batiplus\\chiffrage_prejudice.xlsx",
    "Dossiers\\Succession Morel\\projet_partage.docx",
    "Dossiers\\Succession Morel\\inventaire.xlsx",
    "Cabinet\\facturation_2023.xlsx",
    "Cabinet\\honoraires_convention_modele.docx",
    "Dossiers\\Garnier prud'hommes\\requete_CPH.docx",
    "Dossiers\\Garnier prud'hommes\\calcul_indemnites.xlsx",
)

#: PDFs downloaded from the court and registry sites.
DOWNLOADS: tuple[str, ...] = (
    "jugement_TJ_Paris.pdf",
    "extrait_kbis.pdf",
    "arret_cass_civ3.pdf",
    "avis_imposition.pdf",
    "convocation_audience.pdf",
    "ordonnance_refere.pdf",
)
