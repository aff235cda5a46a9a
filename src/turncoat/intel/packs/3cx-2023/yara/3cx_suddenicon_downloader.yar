/*
  turncoat pack 3cx-2023: the decrypted SUDDENICON downloader (Windows, samcli.dll), as found in an
  extracted payload or a dumped module.
  Written by the turncoat project from the public facts in README.md of this folder.

  The decrypted blob is a loader stub with the DLL at offset 0x65D; the stub hands the DLL
  '1200 2400 "<user agent>"' with a user agent that claims 3CXDesktopApp/18.11.1197. The DLL beacons
  with the cookies __tutma/__tutmc, accepts "gzip, deflate, br" and decrypts with ChainingModeGCM.
  Each string alone is weak (a report quoting them would match), so the rule asks for a PE header at
  the start (the DLL alone) or at 0x65D (the whole decrypted blob; reading "maps the DLL at
  shellcode+0x65D" as the DLL's place in the blob is the project's inference), both cookie names,
  and one more of the strings.
*/

rule TC_3CX_SUDDENICON_Downloader_Strings
{
    meta:
        description = "PE file (or decrypted blob with its PE at 0x65D) with the SUDDENICON downloader's beacon cookie names __tutma and __tutmc and its GCM decryption, encoding or start-up user agent (3CX decrypted second stage)"
        reference = "Huntress gist JohnHammond/b9912e2d2ba4418a8a4450a166b35cb4 ($header: 1200 2400 and the 3CXDesktopApp/18.11.1197 user agent); volexity/threat-intel 2023/2023-03-30 3CX indicators/suri.rules and rules.yar apt_win_iconic @a7eaa9d9 (__tutma, __tutmc, ChainingModeGCM; DLL at shellcode+0x65D, internal name samcli.dll); Elastic SUDDENICON blog (gzip, deflate, br)"
        stage = "vulnerable-installed"
        date = "2026-11-27"
        author = "turncoat project"

    strings:
        $header = "1200 2400 \"Mozilla/5.0 (Windows NT 10.0; Win64; x64)" ascii wide
        $ua = "3CXDesktopApp/18.11.1197 Chrome/102.0.5005.167 Electron/19.1.9" ascii wide
        $cookie_a = "__tutma" ascii wide
        $cookie_c = "__tutmc" ascii wide
        $gcm = "ChainingModeGCM" ascii wide
        $encoding = "gzip, deflate, br" ascii wide

    condition:
        (uint16(0) == 0x5A4D or uint16(0x65D) == 0x5A4D) and
        $cookie_a and $cookie_c and
        ($gcm or $encoding or $header or $ua)
}
