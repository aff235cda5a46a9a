"""The 3CX (March 2023) indicator values the simulated attack emits.

Every value comes from the public sources the 3cx-2023 pack cites (intel/packs/3cx-2023), so the
simulated evidence exercises the same indicators the pack ships. Where the facts give only part of a
file's digests, the missing ones are benign stand-ins (marked below): a real Sysmon event carries all
four, and inventing a pairing between published values would be a false fact.
"""

from __future__ import annotations

from datetime import datetime

from .clock import UTC
from .pe import Hashes, fake_hashes

#: Trojanized side-loaded loader, 3CX 18.12.416 (Volexity iocs.csv; Sophos; Sigma image_load rule).
FFMPEG_TROJANIZED = Hashes(
    sha1="bf939c9c261d27ee7bb92325cc588624fca75429",
    md5="74bc2d0b6680faa1a5a76b27e5479cbc",
    sha256="7986bbaee8940da11ce089383521ab420c443ab7b15ed42aed91fd31ce833896",
    imphash=fake_hashes("imphash ffmpeg 18.12.416").imphash,  # not published
)

#: Microsoft-signed DLL carrying the RC4-encrypted shellcode (Sigma image_load rule; Sophos; Elastic YARA).
D3DCOMPILER_TROJANIZED = Hashes(
    sha1="20d554a80d759c50d6537dd7097fed84dd258b3e",
    md5="82187ad3f0c6c225e2fba0c867280cc9",
    sha256="11be1803e2e307b647a8a7e02d128335c448ff741bf06bf52b332e0bbf423b03",
    imphash=fake_hashes("imphash d3dcompiler_47 18.12.416").imphash,  # not published
)

#: ICONIC browser-history stealer (Volexity iocs.csv; Sigma image_load rule; signature-base).
ICONIC_STEALER = Hashes(
    sha1="3b3e778b647371262120a523eb873c20bb82beaf",
    md5="7faea2b01796b80d180399040bb69835",
    sha256="8ab3a5eaaf8c296080fadf56b265194681d7da5da7c02562953a4cb60e147423",
    imphash=fake_hashes("imphash iconic").imphash,  # not published
)

#: Signed 3CXDesktopApp.exe of build 18.12.416 (Elastic blog; Sigma _execution rule). Only the SHA-256 is
#: published as a pair with this file; SHA-1 and MD5 are stand-ins.
_APP_416_STANDIN = fake_hashes("3CXDesktopApp.exe 18.12.416")
APP_EXE_416 = Hashes(
    sha1=_APP_416_STANDIN.sha1,
    md5=_APP_416_STANDIN.md5,
    sha256="fad482ded2e25ce9e1dd3d3ecc3227af714bdfbbde04347dbc1b21d6a3670405",
    imphash=_APP_416_STANDIN.imphash,
)

TROJANIZED_VERSION = "18.12.416"
INSTALLER_MSI = "3CXDesktopApp-18.12.416.msi"
UPDATE_NUPKG = "3CXDesktopApp-18.12.416-full.nupkg"

#: Microsoft Defender's name for the campaign (facts §4.5, Cado blog).
DEFENDER_THREAT = "Trojan:Win32/SamScissors.SB"

#: Dead-drop host; innocent on its own, an indicator when queried by 3CXDesktopApp.exe (Elastic hunt).
GITHUB_RAW = "raw.githubusercontent.com"
#: GitHub's published addresses for raw.githubusercontent.com.
GITHUB_RAW_IPS = ("185.199.108.133", "185.199.109.133", "185.199.110.133", "185.199.111.133")
#: The IconStorages repository was removed at about this time; later fetches get nothing to decode.
GITHUB_TAKEDOWN = datetime(2023, 3, 29, 1, 19, tzinfo=UTC)
#: The dead-drop icons the implant GETs (facts §3 and §4.1 step 6: `.../main/icon%d.ico`).
ICON_PATH = "/IconStorages/images/main/icon{}.ico"

#: User agent the Windows implant passes to WinHTTP (facts §3: Huntress YARA `$header`; community RE):
#: the genuine app's, of build 18.11.1197.
IMPLANT_USER_AGENT = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                      "3CXDesktopApp/18.11.1197 Chrome/102.0.5005.167 Electron/19.1.9 Safari/537.36")
#: Path of the beacon POST. Stand-in: the facts say only that the implant POSTs a machine identifier to
#: the C2 URL decoded from the icon (Elastic), not what path that URL has.
BEACON_PATH = "/"

#: C2 domains (facts §3, the 21 core domains) with the resolutions one community source published.
C2_RESOLUTIONS: dict[str, str] = {
    "akamaitechcloudservices.com": "199.188.206.6",
    "azureonlinestorage.com": "91.235.116.231",
    "glcloudservice.com": "198.54.125.101",
    "msstorageazure.com": "162.213.255.22",
    "msstorageboxes.com": "162.213.255.24",
    "officestoragebox.com": "162.213.255.23",
    "pbxcloudeservices.com": "91.235.116.231",
    "visualstudiofactory.com": "162.213.255.24",
}

#: Which icons decode to which of those domains (facts §3, from Volexity github_summary.csv).
C2_ICONS: dict[str, tuple[int, ...]] = {
    "msstorageazure.com": (1,),
    "officestoragebox.com": (2,),
    "visualstudiofactory.com": (3,),
    "msstorageboxes.com": (5,),
    "pbxcloudeservices.com": (9,),
    "akamaitechcloudservices.com": (10, 11),
    "azureonlinestorage.com": (12,),
    "glcloudservice.com": (14,),
}

#: Every attack address, so benign stand-in addresses can avoid them.
ATTACK_IPS = frozenset(C2_RESOLUTIONS.values()) | frozenset(GITHUB_RAW_IPS)
