#!/usr/bin/env python3
"""Turns criterion's results of `cargo bench --bench comparison` into the
table and the chart of benches/README.md.

    cargo bench --bench comparison
    python3 benches/chart.py            # needs matplotlib (pip install matplotlib)

Reads target/criterion/compare_*/*/new/estimates.json (the medians of the
last run), prints a Markdown table of medians and ratios, and writes
docs/authentication-cost.png: authentication cost per system, log scale.
"""
import json
import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
CRITERION = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "criterion")
OUT = os.path.join(ROOT, "docs", "authentication-cost.png")


def median_ns(group, name):
    path = os.path.join(CRITERION, group, name, "new", "estimates.json")
    with open(path) as f:
        return json.load(f)["median"]["point_estimate"]


def human(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def main():
    # criterion writes group `compare/verify` as the folder `compare_verify`.
    found = sorted(g for g in os.listdir(CRITERION) if g.startswith("compare_")) if os.path.isdir(CRITERION) else []
    if not found:
        sys.exit(f"no results in {CRITERION}: run `cargo bench --bench comparison` first")
    groups = {}
    for folder in found:
        group = folder[len("compare_"):]
        for name in sorted(os.listdir(os.path.join(CRITERION, folder))):
            if os.path.exists(os.path.join(CRITERION, folder, name, "new", "estimates.json")):
                groups.setdefault(group, {})[name] = median_ns(folder, name)

    verify = groups["verify"]
    base = verify["apikeys_generated"]
    print("| work | system | median | vs apikeys generated |")
    print("|---|---|---|---|")
    for group in ("generate", "verify", "reject"):
        reference = groups[group].get("apikeys_generated", groups[group].get("apikeys_generated_wrong_secret", base))
        for name, ns in sorted(groups[group].items(), key=lambda kv: kv[1]):
            print(f"| {group} | {name} | {human(ns)} | {ns / reference:,.2f}x |")
    print()
    print("Targets:")
    print(f"- api_keys_simplified verify / apikeys_generated verify = {verify['api_keys_simplified'] / base:,.0f}x (>= 1,000x)")
    print(f"- apikeys_generated verify / floor_total = {base / verify['floor_total']:.2f}x (<= 1.3x)")
    print(f"- apikeys_chosen_cached / apikeys_generated = {verify['apikeys_chosen_cached'] / base:.2f}x (<= 2x)")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [
        ("floor (SQLite lookup + SHA-256 + compare)", "floor_total"),
        ("apikeys, generated secret", "apikeys_generated"),
        ("apikeys, chosen secret, cached", "apikeys_chosen_cached"),
        ("prefixed-api-key 0.3.0", "prefixed_api_key"),
        ("apikeys, chosen secret, first check (argon2id)", "apikeys_chosen_first"),
        ("api-keys-simplified 0.5.1 (argon2 every check)", "api_keys_simplified"),
    ]
    labels = [label for label, _ in shown]
    values = [verify[key] / 1000.0 for _, key in shown]
    colors = ["#999999", "#1f77b4", "#1f77b4", "#ff7f0e", "#1f77b4", "#d62728"]
    fig, ax = plt.subplots(figsize=(9, 4.2))
    bars = ax.barh(labels, values, color=colors)
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.set_xlabel("median time to verify a valid key, µs (log scale; lower is better)")
    ax.set_title("Authentication cost per system (100,000 keys in SQLite, one run)")
    for bar, v in zip(bars, values):
        ax.text(v * 1.1, bar.get_y() + bar.get_height() / 2, human(v * 1000), va="center", fontsize=8)
    ax.set_xlim(min(values) / 2, max(values) * 8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    fig.savefig(OUT, dpi=110)
    print(f"\nwrote {os.path.relpath(OUT, ROOT)}")


if __name__ == "__main__":
    main()
