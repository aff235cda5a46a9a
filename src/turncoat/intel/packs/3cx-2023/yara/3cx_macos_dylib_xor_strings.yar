/*
  turncoat pack 3cx-2023: the trojanized libffmpeg.dylib of the macOS app.
  Written by the turncoat project from the public facts in README.md of this folder.

  The dylib keeps its strings XOR-encoded with the single byte 0x7A. The decoded values published
  are a Chrome 108 user agent, the beacon cookie format and the path of the file it reads the macOS
  version from. The xor(0x7A) modifier searches exactly those encoded bytes (never the plain text,
  which is common). A Mach-O header is required.
*/

rule TC_3CX_MacOS_Dylib_XOR_Strings
{
    meta:
        description = "Mach-O file containing the 3CX libffmpeg.dylib strings XOR-encoded with 0x7A (beacon cookie format, user agent, SystemVersion.plist path)"
        reference = "Neo23x0/signature-base APT_MAL_MacOS_NK_3CX_DYLIB_Mar23_1 @8a89b3bf and UK NCSC Smooth_Operator_Strings (XOR key 0x7A and the decoded strings, as summarised in the project's facts file); volexity/threat-intel 2023/2023-03-30 3CX indicators/iocs.csv (libffmpeg.dylib sha256 a64fa9f1...)"
        stage = "vulnerable-installed"
        date = "2026-11-27"
        author = "turncoat project"

    strings:
        $cookie = ";3cx_auth_token_content=%s;__tutma=" xor(0x7A)
        $ua = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/108.0.5359.128 Safari/537.36" xor(0x7A)
        $plist = "/System/Library/CoreServices/SystemVersion.plist" xor(0x7A)

    condition:
        (
            uint32(0) == 0xFEEDFACE or uint32(0) == 0xFEEDFACF or   // thin Mach-O, 32/64-bit
            uint32(0) == 0xCEFAEDFE or uint32(0) == 0xCFFAEDFE or   // same, big-endian
            uint32be(0) == 0xCAFEBABE                                // universal (fat) binary
        ) and
        ($cookie or 2 of them)
}
