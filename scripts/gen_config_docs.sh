#!/usr/bin/env bash
# Regenerates the key reference in docs/configs.md from the config structs (src/config, include/llavacot/config).
# Usage: scripts/gen_config_docs.sh [path/to/llavacot]   (default: build/llavacot)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/llavacot}
doc=docs/configs.md
begin='<!-- BEGIN GENERATED: llavacot --config-reference -->'
end='<!-- END GENERATED -->'
ref=$("$bin" --config-reference)
python3 - "$doc" "$begin" "$end" "$ref" <<'PY'
import sys
doc, begin, end, ref = sys.argv[1:5]
text = open(doc).read()
a, b = text.index(begin) + len(begin), text.index(end)
open(doc, "w").write(text[:a] + "\n" + ref + "\n" + text[b:])
PY
echo "updated $doc"
