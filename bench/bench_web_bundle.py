"""Figure of issue 4: how much JavaScript the web IDE ships on first load, and the size of the whole bundle.

First load = the entry scripts of web/dist/index.html plus the chunks it modulepreloads (what a browser
fetches before the login page can render), each gzip-compressed at level 9 as a server would send them.
The IDE (Monaco, xterm) is loaded lazily and is reported separately. Standard library only.

    python3 bench/bench_web_bundle.py [--dist web/dist] [--build]
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "web_bundle.json"


class EntryParser(HTMLParser):
    """Collects module entry scripts, modulepreloads and stylesheets of index.html."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.preloads: list[str] = []
        self.styles: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "script" and a.get("src"):
            self.scripts.append(a["src"])
        elif tag == "link" and a.get("rel") == "modulepreload" and a.get("href"):
            self.preloads.append(a["href"])
        elif tag == "link" and a.get("rel") == "stylesheet" and a.get("href"):
            self.styles.append(a["href"])


def gz(data: bytes) -> int:
    return len(gzip.compress(data, compresslevel=9, mtime=0))


def local(dist: Path, url: str) -> Path | None:
    """The file in dist for a same-origin URL, or None (an external URL would break offline use)."""
    if "://" in url or url.startswith("//"):
        return None
    return dist / url.split("?", 1)[0].lstrip("/")


def kb(n: int) -> float:
    return round(n / 1024, 1)


def measure(dist: Path) -> dict[str, object]:
    index = dist / "index.html"
    if not index.is_file():
        sys.exit(
            f"{index} not found: build the web app first (cd web && npm ci && npm run build), or pass --build"
        )
    parser = EntryParser()
    parser.feed(index.read_text(encoding="utf-8"))

    external = [
        u for u in parser.scripts + parser.preloads + parser.styles if local(dist, u) is None
    ]
    first_js: list[dict[str, object]] = []
    for url in dict.fromkeys(parser.scripts + parser.preloads):
        path = local(dist, url)
        if path is None or not path.is_file():
            continue
        data = path.read_bytes()
        first_js.append({"file": url, "bytes": len(data), "gzip_bytes": gz(data)})
    first_css = []
    for url in parser.styles:
        path = local(dist, url)
        if path is not None and path.is_file():
            data = path.read_bytes()
            first_css.append({"file": url, "bytes": len(data), "gzip_bytes": gz(data)})

    all_files = [p for p in dist.rglob("*") if p.is_file()]
    js_files = [p for p in all_files if p.suffix == ".js"]

    def by_name(prefix: str) -> list[Path]:
        return [p for p in js_files if p.name.startswith(prefix)]

    def group(files: list[Path]) -> dict[str, float]:
        data = [f.read_bytes() for f in files]
        return {"kb": kb(sum(len(d) for d in data)), "gzip_kb": kb(sum(gz(d) for d in data))}

    first_gz = sum(int(str(f["gzip_bytes"])) for f in first_js)
    first_raw = sum(int(str(f["bytes"])) for f in first_js)
    return {
        "benchmark": "web_bundle",
        "unit": "KiB (1024 bytes); gzip level 9",
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "system": platform.system()},
        "first_load_js_gzip_kb": kb(first_gz),
        "first_load_js_kb": kb(first_raw),
        "first_load_css_gzip_kb": kb(sum(int(str(f["gzip_bytes"])) for f in first_css)),
        "first_load_files": first_js + first_css,
        "external_urls": external,
        "lazy": {
            "workspace_page": group(by_name("WorkspacePage-")),
            "monaco_editor": group(by_name("CodeEditor-") + by_name("editor.api-")),
            "monaco_workers": group([p for p in js_files if ".worker" in p.name]),
        },
        "total_js_kb": kb(sum(p.stat().st_size for p in js_files)),
        "total_bundle_kb": kb(sum(p.stat().st_size for p in all_files)),
        "file_count": len(all_files),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dist", type=Path, default=ROOT / "web" / "dist")
    ap.add_argument("--build", action="store_true", help="run `npm run build` in web/ first")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if args.build:
        subprocess.run(["npm", "run", "build"], cwd=ROOT / "web", check=True)
    result = measure(args.dist.resolve())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    lazy = result["lazy"]
    assert isinstance(lazy, dict)
    print(
        f"first-load JS: {result['first_load_js_gzip_kb']} kB gzipped ({result['first_load_js_kb']} kB raw), "
        f"CSS {result['first_load_css_gzip_kb']} kB gzipped"
    )
    print(
        f"lazy: workspace {lazy['workspace_page']['gzip_kb']} kB gz, Monaco {lazy['monaco_editor']['gzip_kb']} kB gz, "
        f"workers {lazy['monaco_workers']['gzip_kb']} kB gz"
    )
    print(
        f"total bundle: {result['total_bundle_kb']} kB in {result['file_count']} files (JS {result['total_js_kb']} kB)"
    )
    if result["external_urls"]:
        print(f"WARNING: index.html loads from other origins: {result['external_urls']}")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    main()
