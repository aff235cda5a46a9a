/*
  turncoat pack 3cx-2023: the RC4 key of the trojanized ffmpeg.dll loader (Windows).
  Written by the turncoat project from the public facts in README.md of this folder.

  ffmpeg.dll decrypts the blob that follows the FE ED FA CE marker in d3dcompiler_47.dll with the RC4
  key 3jB(2bsG#@c7. The key is only evidence inside an executable: reports, notes and this rule file
  quote it too, so the rule asks for a PE header.
*/

rule TC_3CX_Loader_RC4_Key
{
    meta:
        description = "PE file containing the RC4 key 3jB(2bsG#@c7 used by the 3CX trojanized ffmpeg.dll to decrypt its payload"
        reference = "Elastic SUDDENICON blog (RC4 key 3jB(2bsG#@c7); Neo23x0/signature-base gen_mal_3cx_compromise_mar23.yar APT_SUSP_NK_3CX_RC4_Key_Mar23_1 @8a89b3bf (same key)"
        stage = "vulnerable-installed"
        date = "2026-11-27"
        author = "turncoat project"

    strings:
        $key = "3jB(2bsG#@c7" ascii wide

    condition:
        uint16(0) == 0x5A4D and $key
}
