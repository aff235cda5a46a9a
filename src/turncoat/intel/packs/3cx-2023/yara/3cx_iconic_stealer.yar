/*
  turncoat pack 3cx-2023: the ICONIC (ICONICSTEALER) third-stage stealer (Windows).
  Written by the turncoat project from the public facts in README.md of this folder.

  The stealer reads the last 500 URL+title rows of Chromium and Firefox history, the 3CX app's
  config.json, and sends host name, domain and OS version as a small JSON text. Its SQL queries and
  JSON format string are specific; the browser folders are common in benign software, so they only
  add weight. A PE header is required: threat reports and notes quote the same strings.
*/

rule TC_3CX_ICONIC_Stealer_Strings
{
    meta:
        description = "PE file carrying the ICONIC stealer's history queries, system-info JSON format and 3CX config path (3CX third stage)"
        reference = "volexity/threat-intel 2023/2023-03-30 3CX indicators/rules.yar apt_win_iconicstealer @a7eaa9d9; elastic/protections-artifacts yara/rules/Windows_Trojan_SuddenIcon.yar @9c334cf8; Neo23x0/signature-base APT_MAL_NK_3CX_ICONIC_Stealer_Mar23_1 @8a89b3bf (strings quoted as facts); Sophos update 2023-04-06 (config.json)"
        stage = "payload"
        date = "2026-11-27"
        author = "turncoat project"

    strings:
        $sql_chromium = "SELECT url, title FROM urls ORDER BY id DESC LIMIT 500" ascii wide
        $sql_firefox = "SELECT url, title FROM moz_places ORDER BY id DESC LIMIT 500" ascii wide
        $sysinfo = "{\"HostName\": \"%s\", \"DomainName\": \"%s\", \"OsVersion\": \"%d.%d.%d\"}" ascii wide
        $config = "\\3CXDesktopApp\\config.json" ascii wide nocase
        $chrome = "AppData\\Local\\Google\\Chrome\\User Data" ascii wide nocase
        $brave = "AppData\\Local\\BraveSoftware\\Brave-Browser\\User Data" ascii wide nocase
        $firefox = "AppData\\Roaming\\Mozilla\\Firefox\\Profiles" ascii wide nocase

    condition:
        uint16(0) == 0x5A4D and
        (any of ($sql_*) or $sysinfo) and
        3 of them
}
