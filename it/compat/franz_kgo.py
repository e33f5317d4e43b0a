"""franz-go's own integration tests (`go test` of pkg/kgo, the version
it/compat/go/go.mod pins) against Chronik: they target an external broker
through KGO_SEEDS. Topics get replication factor 1 (KGO_TEST_RF, one
node) and the record-heavy tests 20,000 records instead of 500,000
(KGO_TEST_RECORDS) to fit the CI's time. Tests of what Chronik does not
implement are left out by name (-test.skip), counted and listed:
transactions (Txn), share groups (Share), SASL (SCRAM, OAuth).

Usage: python3 franz_kgo.py BOOTSTRAP TOPIC GROUP. Prints one JSON line
with the counts of passed, failed and skipped top-level tests."""
import json
import os
import re
import shutil
import subprocess
import sys
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.path.join(ROOT, "target", "franz-kgo")
OUT_OF_SCOPE = {"Txn": "transactions", "Share": "share groups (KIP-932)", "SCRAM": "SASL", "OAuth": "SASL"}
TIMEOUT_S = 540


def version():
    with open(os.path.join(HERE, "go", "go.mod")) as f:
        return re.search(r"github\.com/twmb/franz-go (v\S+)", f.read()).group(1)


def test_binary(v):
    """Builds pkg/kgo's test binary from the module's source, once per version."""
    binary = os.path.join(BUILD, f"kgo-{v}.test")
    src = os.path.join(BUILD, f"franz-go-{v}")
    if not os.path.exists(binary):
        info = json.loads(subprocess.run(["go", "mod", "download", "-json", f"github.com/twmb/franz-go@{v}"], cwd=os.path.join(HERE, "go"),
                                         capture_output=True, text=True, check=True, timeout=600).stdout)
        shutil.rmtree(src, ignore_errors=True)
        shutil.copytree(info["Dir"], src)
        for d, _, files in os.walk(src):
            os.chmod(d, 0o755)
            for f in files:
                os.chmod(os.path.join(d, f), 0o644)
        subprocess.run(["go", "test", "-c", "-o", binary, "./pkg/kgo"], cwd=src, check=True, timeout=900, env={**os.environ, "GOFLAGS": "-mod=mod"})
    return binary, os.path.join(src, "pkg", "kgo")


def out_of_scope(pkg_dir):
    """Top-level tests -test.skip leaves out, by reason."""
    names = {}
    for f in os.listdir(pkg_dir):
        if f.endswith("_test.go"):
            with open(os.path.join(pkg_dir, f)) as fh:
                for name in re.findall(r"(?m)^func (Test\w+)\(", fh.read()):
                    for word, why in OUT_OF_SCOPE.items():
                        if word in name:
                            names[name] = why
    return names


def main():
    bootstrap = sys.argv[1]
    v = version()
    result = {"ok": False, "version": f"franz-go {v} pkg/kgo tests"}
    try:
        binary, pkg_dir = test_binary(v)
        env = {**os.environ, "KGO_SEEDS": bootstrap, "KGO_TEST_RF": "1", "KGO_TEST_RECORDS": "20000"}
        r = subprocess.run([binary, "-test.v", "-test.timeout", f"{TIMEOUT_S - 30}s", "-test.skip", "|".join(OUT_OF_SCOPE)],
                           cwd=pkg_dir, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
        top = re.findall(r"(?m)^--- (PASS|FAIL|SKIP): (\S+)", r.stdout)
        failed = sorted(n for s, n in top if s == "FAIL")
        skipped = sorted(n for s, n in top if s == "SKIP")
        left_out = out_of_scope(pkg_dir)
        counts = {"passed": sum(1 for s, _ in top if s == "PASS"), "failed": len(failed), "skipped": len(skipped), "out_of_scope": len(left_out)}
        print(json.dumps({"failed": failed, "skipped": skipped, "out_of_scope": left_out}, indent=1), file=sys.stderr)
        if failed or r.returncode not in (0, 1):
            sys.stderr.write(r.stdout[-6000:])
        finished = re.search(r"(?m)^(PASS|FAIL)$", r.stdout) is not None
        result.update(counts)
        result["ok"] = finished and not failed and counts["passed"] > 100
        summary = f"passed {counts['passed']}, failed {len(failed)}, skipped {len(skipped)}, left out {len(left_out)} (transactions, share groups, SASL)"
        result["error"] = summary if result["ok"] else f"{summary}; failed: {failed[:8]}" + ("" if finished else "; did not finish")
    except Exception as e:  # noqa: BLE001 - the row's failure
        traceback.print_exc()
        result["error"] = f"{type(e).__name__}: {e}"[:300]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
