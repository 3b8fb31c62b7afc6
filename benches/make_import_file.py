#!/usr/bin/env python3
"""Writes an import file for benches/import.sh: ACCOUNTS masters of KEYS
keys each (FTP, HTTP, Web Service, then REST), every key with the same
stored hash (an import reads hashes, it never runs them) or, with
--plaintext, its own chosen secret (which the import hashes with argon2).

usage: make_import_file.py OUT ACCOUNTS [KEYS] [--plaintext]
"""
import json
import sys

# bcrypt, cost 4, of "Acme-Ftp-Secret-2019" (made by the bcrypt crate).
HASH = "$2b$04$mIEgm4QjnocmoYoppI0spuvm19pzQ1scHzk83fL1LNNr5tLnzh48C"
CHANNELS = ["ftp", "http", "web_service", "rest", "rest", "rest"]


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    plaintext = "--plaintext" in sys.argv
    out, accounts = args[0], int(args[1])
    keys = int(args[2]) if len(args) > 2 else 4
    with open(out, "w") as f:
        for i in range(accounts):
            ks = []
            for j in range(keys):
                k = {"channel": CHANNELS[j % len(CHANNELS)], "identifier": f"bench-{i}-{j}"}
                if plaintext:
                    k["secret"] = f"Bench-Secret-{i}-{j}"
                else:
                    k["secret_hash"] = HASH
                ks.append(k)
            line = {"external_id": f"bench-{i}", "kind": "master",
                    "created_at": "2024-01-01T00:00:00Z", "keys": ks}
            f.write(json.dumps(line, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
