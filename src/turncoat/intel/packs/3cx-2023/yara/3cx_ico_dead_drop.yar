/*
  turncoat pack 3cx-2023: the GitHub "IconStorages" dead-drop icons (Windows downloader's C2 lookup).
  Written by the turncoat project from the public facts in README.md of this folder.

  Each icon is an ordinary ICO file; after its image data, at the end of the file, comes "$" and a
  base64 text. Decoded, bytes 4..20 are an AES-GCM tag and the rest the encrypted C2 URL: at least
  20 bytes plus a URL (the shortest decoded value is the decoy www.3cx.com, 11 bytes), so at least
  40 base64 characters.

  The rule uses no string search: it reads the ICO directory and the last bytes of ICO files only,
  which keeps it free for every other file scanned.
*/

rule TC_3CX_ICO_Dead_Drop_Base64_Trailer
{
    meta:
        description = "ICO file with '$' and a base64 run (at least 40 characters) appended after all its image data, at the end of the file (3CX IconStorages dead-drop icon carrying an encrypted C2 URL)"
        reference = "volexity/threat-intel 2023/2023-03-30 3CX indicators/rules.yar apt_ico_uta0040_b64_c2 and attachments/decrypt_ico.py @a7eaa9d9 ('$' + base64 near EOF; tag bytes 4..20, ciphertext after); attachments/github_summary.csv (icon0 decodes to decoy www.3cx.com); Elastic SUDDENICON blog (raw.githubusercontent.com/IconStorages/images/main/icon%d.ico); sophoslabs/IoCs (icon13.ico sha256 4e08e4ff...)"
        stage = "c2-contact"
        date = "2026-11-27"
        author = "turncoat project"

    condition:
        // ICONDIR: reserved 0, type 1 (icon), 1..255 images
        uint32(0) == 0x00010000 and uint16(4) > 0 and uint16(4) < 256 and
        filesize < 4MB and
        for any n in (41..4096) : (                       // n: bytes from the '$' to the end of file
            uint8(filesize - n) == 0x24 and
            // after the data of every image of the directory (ICONDIRENTRY: size at +8, offset at +12)
            for all k in (0..uint16(4) - 1) : (
                uint32(6 + 16 * k + 12) + uint32(6 + 16 * k + 8) <= filesize - n
            ) and
            // the first character after '$' is a base64 letter or digit, and every byte up to the end
            // is base64 (A-Z a-z 0-9 + / =) or a line break
            (
                (uint8(filesize - n + 1) >= 0x41 and uint8(filesize - n + 1) <= 0x5A) or
                (uint8(filesize - n + 1) >= 0x61 and uint8(filesize - n + 1) <= 0x7A) or
                (uint8(filesize - n + 1) >= 0x30 and uint8(filesize - n + 1) <= 0x39) or
                uint8(filesize - n + 1) == 0x2B or uint8(filesize - n + 1) == 0x2F
            ) and
            for all p in (filesize - n + 1 .. filesize - 1) : (
                (uint8(p) >= 0x41 and uint8(p) <= 0x5A) or
                (uint8(p) >= 0x61 and uint8(p) <= 0x7A) or
                (uint8(p) >= 0x30 and uint8(p) <= 0x39) or
                uint8(p) == 0x2B or uint8(p) == 0x2F or uint8(p) == 0x3D or
                uint8(p) == 0x0A or uint8(p) == 0x0D
            )
        )
}
