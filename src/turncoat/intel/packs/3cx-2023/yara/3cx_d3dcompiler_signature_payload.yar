/*
  turncoat pack 3cx-2023: the trojanized d3dcompiler_47.dll (Windows, armed loader's payload).
  Written by the turncoat project from the public facts in README.md of this folder.

  The genuine Microsoft-signed DLL carries, appended inside its Authenticode certificate table and
  after the PKCS#7 signature itself, the marker FE ED FA CE followed by the RC4-encrypted shellcode
  (0x43B08 bytes in the analysed sample). The trojanized ffmpeg.dll looks for that marker. The rule
  therefore asks for the marker inside the certificate table, after the end of the DER-encoded
  signature, with at least 64 KiB of table left after it: a marker inside genuine signature bytes, or
  a short coincidental one, does not fire.
*/

import "pe"

rule TC_3CX_D3DCompiler_Payload_After_Signature
{
    meta:
        description = "PE file whose Authenticode certificate table holds the FE ED FA CE marker after the signature, followed by a large appended blob (3CX trojanized d3dcompiler_47.dll)"
        reference = "Elastic SUDDENICON blog (marker FE ED FA CE; encrypted payload read by ffmpeg.dll); secpulse.com/archives/200404.html (0x43B08-byte blob after the marker); BleepingComputer 2023-03-31 (blob inside the Authenticode signature area, signature still valid); sophoslabs/IoCs (sha256 11be1803...)"
        stage = "vulnerable-installed"
        date = "2026-11-27"
        author = "turncoat project"

    strings:
        $marker = { FE ED FA CE }

    condition:
        uint16(0) == 0x5A4D and
        pe.data_directories[pe.IMAGE_DIRECTORY_ENTRY_SECURITY].size > 8 and
        for any i in (1..#marker) : (
            // inside the certificate table (for this directory the "address" is a file offset) ...
            @marker[i] >= pe.data_directories[pe.IMAGE_DIRECTORY_ENTRY_SECURITY].virtual_address + 8 and
            @marker[i] + 4 + 0x10000 <= pe.data_directories[pe.IMAGE_DIRECTORY_ENTRY_SECURITY].virtual_address
                                        + pe.data_directories[pe.IMAGE_DIRECTORY_ENTRY_SECURITY].size and
            // ... and after the DER SEQUENCE of the first signature (30 82 <len16>), when it has that form
            (
                uint16be(pe.data_directories[pe.IMAGE_DIRECTORY_ENTRY_SECURITY].virtual_address + 8) != 0x3082 or
                @marker[i] >= pe.data_directories[pe.IMAGE_DIRECTORY_ENTRY_SECURITY].virtual_address + 12
                              + uint16be(pe.data_directories[pe.IMAGE_DIRECTORY_ENTRY_SECURITY].virtual_address + 10)
            )
        )
}
