"""The bad-input matrix: 160+ hostile or careless inputs against every CLI and the public API.

Each case runs in a fresh Python process against the rtmw tree on PYTHONPATH (so the same
matrix measures an older checkout too) and is classified:

- clean: a non-zero exit with the expected code, one error line, nothing left behind;
- traceback: a Python traceback or a raw, non-rtmw exception reached the user;
- wrong exit: failed, but with another exit code than the README's table says;
- accepted: exit 0 on input that must be refused (the worst: a silent wrong answer);
- unclear: refused, but not in one line (or not naming the problem);
- leftover: a half-written artifact or work folder stayed behind;
- race: two concurrent exports both reported success for one folder.

    .venv/bin/python tools/bad_input_matrix.py --out results/bad-input      # this tree
    git worktree add /tmp/before <commit>
    PYTHONPATH=/tmp/before .venv/bin/python tools/bad_input_matrix.py --tree /tmp/before \\
        --out results/bad-input/before
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Case:
    family: str
    name: str
    code: str  # Python run in a fresh process; CLI cases call a click main with sys.argv
    expect: int  # the exit code the README's table gives
    leftovers: str = ""  # glob under the case folder that must be empty afterwards
    race: bool = False


@dataclass
class Outcome:
    family: str
    name: str
    verdict: str
    exit_code: int
    expect: int
    message: str


PRELUDE = """
import sys, os, json, shutil
from pathlib import Path
WORK = Path(os.environ["MATRIX_WORK"]); CASE = Path(os.environ["MATRIX_CASE"])
CASE.mkdir(parents=True, exist_ok=True)
FIX = json.loads((WORK / "fixtures.json").read_text())
def cli(module, *args):
    import importlib
    sys.argv = [module] + [str(a) for a in args]
    importlib.import_module(module).main(standalone_mode=True)
def api(fn):
    from rtmw.errors import RtmwError
    try:
        fn()
    except RtmwError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
"""


def cli(module: str, *args: str) -> str:
    return f"cli({module!r}, {', '.join(args)})"


def api(body: str) -> str:
    return (
        "def _case():\n" + textwrap.indent(textwrap.dedent(body).strip(), "    ") + "\napi(_case)"
    )


def _bytes_file(name: str, expr: str) -> str:
    return f"p = CASE / {name!r}; p.write_bytes({expr})"


# -- checkpoint files: each is given to rtmw-inspect, rtmw-export and rtmw-train --init ----
CHECKPOINTS = {
    "missing": "p = CASE / 'missing.pth'",
    "empty": _bytes_file("e.pth", "b''"),
    "random bytes": _bytes_file("r.pth", "os.urandom(4096)"),
    "truncated": "p = CASE / 't.pth'; p.write_bytes(Path(FIX['demo']).read_bytes()[:100000])",
    "plain pickle running code": (
        "import pickle\nclass E:\n    def __reduce__(self): return (os.system, ('true',))\n"
        "p = CASE / 'x.pkl'; p.write_bytes(pickle.dumps({'state_dict': E()}))"
    ),
    "torch file running code": (
        "import torch\nclass E:\n    def __reduce__(self): return (os.system, ('true',))\n"
        "p = CASE / 'x.pth'; torch.save({'state_dict': E()}, p)"
    ),
    "safetensors": (
        "import struct; h = json.dumps({'w': {'dtype': 'F32', 'shape': [1], "
        "'data_offsets': [0, 4]}}).encode(); p = CASE / 'm.safetensors'; "
        "p.write_bytes(struct.pack('<Q', len(h)) + h + bytes(4))"
    ),
    "onnx model": "p = CASE / 'm.onnx'; shutil.copy(FIX['onnx_file'], p)",
    "zip of text": (
        "import zipfile; p = CASE / 'z.pth'\n"
        "with zipfile.ZipFile(p, 'w') as z: z.writestr('a.txt', 'x')"
    ),
    "json file": "p = CASE / 'j.pth'; p.write_text('{}')",
    "directory": "p = CASE / 'dir.pth'; p.mkdir()",
    "rtmpose layout": "p = Path(FIX['rtmpose'])",
    "rtmw3d layout": "p = Path(FIX['rtmw3d'])",
    "missing tensors": "p = Path(FIX['missing_keys'])",
    "wrong shapes": "p = Path(FIX['wrong_shape'])",
}
CHECKPOINT_USERS = {
    "rtmw-inspect": ("rtmw.cli.inspect", ["p"]),
    "rtmw-export": ("rtmw.cli.export", ["p", "'--targets'", "'onnx'", "'--out'", "CASE / 'out'"]),
    "rtmw-train --init": (
        "rtmw.cli.train",
        [
            "'--init'",
            "p",
            "'--images'",
            "FIX['val_images']",
            "'--ann'",
            "FIX['val_ann']",
            "'--iters'",
            "'1'",
            "'--batch-size'",
            "'2'",
            "'--out'",
            "CASE / 'run'",
        ],
    ),  # fmt: skip
}


def checkpoint_cases() -> list[Case]:
    cases = []
    for user, (module, args) in CHECKPOINT_USERS.items():
        for kind, setup in CHECKPOINTS.items():
            code = setup + "\n" + cli(module, *args)
            # a folder where a file is expected is refused by the option parser: usage
            expect = 2 if kind == "directory" else 1
            cases.append(Case("checkpoint", f"{user}: {kind}", code, expect, leftovers="out/.*"))
    return cases


# -- artifacts: tampered in each way, opened by the runtime API and by rtmw-bench -----------
ARTIFACT_EDITS = {
    "precision edited": "m['precision'] = 'int8'",
    "input size edited": "m['input_size'] = [288, 384]",
    "file hash edited": "m['files']['model.onnx'] = '0' * 64",
    "unknown field": "m['tuned'] = True",
    "schema edited": "m['schema'] = 'rtmw.artifact/0'",
    "files not a map": "m['files'] = ['model.onnx']",
    "model file truncated": "TRUNCATE",
    "model file removed": "REMOVE",
    "manifest not json": "NOTJSON",
    "manifest a list": "LIST",
}


def _artifact_setup(edit: str) -> str:
    lines = ["a = CASE / 'art' / 'onnx'; shutil.copytree(FIX['artifact'], a)",
             "m = json.loads((a / 'artifact.json').read_text())"]  # fmt: skip
    if edit == "TRUNCATE":
        lines.append("(a / 'model.onnx').write_bytes((a / 'model.onnx').read_bytes()[:5000])")
    elif edit == "REMOVE":
        lines.append("(a / 'model.onnx').unlink()")
    elif edit == "NOTJSON":
        lines.append("(a / 'artifact.json').write_text('{not json')")
    elif edit == "LIST":
        lines.append("(a / 'artifact.json').write_text('[1, 2]')")
    else:
        lines += [edit, "(a / 'artifact.json').write_text(json.dumps(m))"]
    return "\n".join(lines)


def artifact_cases() -> list[Case]:
    cases = []
    for kind, edit in ARTIFACT_EDITS.items():
        setup = _artifact_setup(edit)
        opened = api("from rtmw import runtimes\nruntimes.open(a).close()")
        cases.append(Case("artifact", f"runtimes.open: {kind}", setup + "\n" + opened, 1))
        benched = cli("rtmw.cli.bench", "a", "'--iters'", "'1'", "'--out'", "CASE / 'r'")
        cases.append(Case("artifact", f"rtmw-bench: {kind}", setup + "\n" + benched, 1))
    staged = (
        "o = CASE / 'art'; s = o / '.onnx.staging-0123abcd'; shutil.copytree(FIX['artifact'], s)\n"
        + cli("rtmw.cli.bench", "o", "'--iters'", "'1'", "'--out'", "CASE / 'r'")
    )
    cases.append(Case("artifact", "rtmw-bench: a killed export's staging folder", staged, 1))
    direct = "s = CASE / '.onnx.staging-0123abcd'; shutil.copytree(FIX['artifact'], s)\n" + api(
        "from rtmw import runtimes\nruntimes.open(s).close()"
    )
    cases.append(Case("artifact", "runtimes.open: a staging folder", direct, 1))
    return cases


# -- runtime and TopDown inputs --------------------------------------------------------------
def runtime_cases() -> list[Case]:
    batches = {
        "float64 batch": "np.zeros((2, 3, 256, 192))",
        "HWC batch": "np.zeros((2, 256, 192, 3), np.float32)",
        "wrong size": "np.zeros((1, 3, 192, 256), np.float32)",
        "empty batch": "np.zeros((0, 3, 256, 192), np.float32)",
        "3-d batch": "np.zeros((3, 256, 192), np.float32)",
        "python list": "[[0.0]]",
    }
    cases = []
    for kind, expr in batches.items():
        body = f"import numpy as np\nfrom rtmw import runtimes\nr = runtimes.open(FIX['artifact'])\nr.infer({expr})"
        cases.append(Case("runtime", f"infer: {kind}", api(body), 1))
    for device in ("cuda", "tensorrt", "metal", "cpu:7x"):
        body = f"from rtmw import runtimes\nruntimes.open(FIX['artifact'], device={device!r})"
        cases.append(Case("runtime", f"open on device {device}", api(body), 4))
    images = {
        "float image": "np.zeros((240, 320, 3), np.float32)",
        "gray image": "np.zeros((240, 320), np.uint8)",
        "RGBA image": "np.zeros((240, 320, 4), np.uint8)",
        "1x1 image": "np.zeros((1, 1, 3), np.uint8)",
        "list image": "[[0]]",
    }
    for kind, expr in images.items():
        body = (f"import numpy as np\nfrom rtmw.pipeline import TopDown\n"
                f"TopDown(lambda b: (b, b), (192, 256))({expr}, [[0, 0, 50, 90]])")  # fmt: skip
        cases.append(Case("topdown", kind, api(body), 1))
    boxes = {
        "NaN box": "[[0, 0, float('nan'), 90]]",
        "inverted box": "[[50, 50, 10, 10]]",
        "box outside": "[[900, 900, 1000, 1000]]",
        "boxes (N,2)": "[[1, 2], [3, 4]]",
        "string boxes": "'0 0 50 90'",
    }
    for kind, expr in boxes.items():
        body = (f"import numpy as np\nfrom rtmw.pipeline import TopDown\n"
                f"TopDown(lambda b: (b, b), (192, 256))(np.zeros((240, 320, 3), np.uint8), {expr})")  # fmt: skip
        cases.append(Case("topdown", kind, api(body), 1))
    bounded = api(
        """
        import resource, numpy as np
        from rtmw.pipeline import TopDown
        out = lambda b: (np.zeros((len(b), 133, 384), np.float32), np.zeros((len(b), 133, 512), np.float32))
        r = np.random.default_rng(0).uniform(0, 300, (1000, 2))
        TopDown(out, (192, 256))(np.zeros((480, 640, 3), np.uint8), np.concatenate([r, r + 100], 1))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if peak > 3000:  # unbounded: the wrong behaviour exits 0 ("accepted")
            print(f"1000 boxes took {peak:.0f} MB"); sys.exit(0)
        from rtmw.errors import InputError
        raise InputError(f"bounded: peak {peak:.0f} MB")
        """
    )
    cases.append(Case("topdown", "1000 boxes in bounded memory", bounded, 1))
    bf16 = api(
        """
        from rtmw.artifact import read_artifact, write_manifest
        from rtmw import runtimes
        a = CASE / 'bf'; shutil.copytree(FIX['artifact'], a)
        art = read_artifact(a); art.manifest.precision = 'bf16'; write_manifest(a, art.manifest)
        os.environ['ONEDNN_MAX_CPU_ISA'] = 'AVX2'
        runtimes.open(a)
        """
    )
    cases.append(Case("runtime", "bf16 artifact on a CPU capped below bf16", bf16, 4))
    return cases


# -- export options, kill and concurrency -----------------------------------------------------
def export_cases() -> list[Case]:
    demo = "FIX['demo']"
    out = "CASE / 'out'"
    options = {
        "opset 7": ("'--opset'", "'7'"),
        "opset 99": ("'--opset'", "'99'"),
        "unknown target": ("'--targets'", "'onnx,onxx'"),
        "empty targets": ("'--targets'", "','"),
        "int8 without calibration": ("'--targets'", "'ort-int8'"),
        "calibration file missing": ("'--targets'", "'ort-int8'", "'--calib'", "CASE / 'n.npz'"),
        "unknown int8 policy": ("'--targets'", "'ort-int8'", "'--int8-policy'", "'most'"),
    }
    expects = {"int8 without calibration": 1, "calibration file missing": 1}
    cases = []
    for kind, extra in options.items():
        args = [demo, *(() if "'--targets'" in extra else ("'--targets'", "'onnx'")), *extra,
                "'--out'", out]  # fmt: skip
        cases.append(Case("export", kind, cli("rtmw.cli.export", *args), expects.get(kind, 2),
                          leftovers="out/.*"))  # fmt: skip
    file_out = "(CASE / 'f').write_text('x')\n" + cli(
        "rtmw.cli.export", demo, "'--targets'", "'onnx'", "'--out'", "CASE / 'f'"
    )
    cases.append(Case("export", "--out is a file", file_out, 2))
    exists = "shutil.copytree(FIX['artifact'], CASE / 'out' / 'onnx')\n" + cli(
        "rtmw.cli.export", demo, "'--targets'", "'onnx'", "'--out'", out
    )
    cases.append(Case("export", "artifact exists, no --overwrite", exists, 1, leftovers="out/.*"))
    kill = (
        "import subprocess, signal, time\n"
        'code = "from rtmw.export import export; from rtmw.models import demo_checkpoint as d; '
        "export(d(), ['onnx'], %r)\" % str(CASE / 'out')\n"
        "proc = subprocess.Popen([sys.executable, '-c', code])\n"
        "t = time.monotonic()\n"
        "while time.monotonic() - t < 200 and not list((CASE / 'out').glob('.onnx.staging-*/artifact.json')):\n"
        "    time.sleep(0.05)\n"
        "proc.send_signal(signal.SIGKILL); proc.wait()\n"
        + cli("rtmw.cli.bench", "CASE / 'out'", "'--iters'", "'1'", "'--out'", "CASE / 'r'")
    )
    cases.append(Case("kill -9", "bench after an export killed during verification", kill, 1))
    kill_then_export = (
        kill.rsplit("\n", 1)[0]
        + "\n"
        + api(
            """
        from rtmw.export import export
        (r,) = export(FIX['demo'], ['onnx'], CASE / 'out')
        left = [p for p in (CASE / 'out').glob('.onnx.*') if p.is_dir()]
        if left or r.status != 'ok':  # the wrong behaviour exits 0 ("accepted")
            print(f"re-export {r.status}; {len(left)} work folders left"); sys.exit(0)
        from rtmw.errors import RtmwError
        raise RtmwError("clean re-export, no work folder left")
        """
        )
    )
    cases.append(Case("kill -9", "export again after a killed export", kill_then_export, 1))
    race = api(
        """
        import threading
        from rtmw.export import export
        results = []
        ts = [threading.Thread(target=lambda: results.extend(export(FIX['demo'], ['onnx'], CASE / 'out'))) for _ in range(2)]
        [t.start() for t in ts]; [t.join() for t in ts]
        ok = sum(r.status == 'ok' for r in results)
        print('RACE' if ok == 2 else 'serialised', [r.status for r in results])
        from rtmw.errors import RtmwError
        raise RtmwError(f"{ok} of 2 concurrent exports reported ok")  # one: serialised
        """
    )
    cases.append(Case("concurrency", "two exports of one target into one folder", race, 1,
                      race=True))  # fmt: skip
    return cases


# -- calibration --------------------------------------------------------------------------------
def calibration_cases() -> list[Case]:
    cases = []
    base = ["'--images'", "FIX['train_images']", "'--ann'", "FIX['train_ann']"]
    for size in ("0x0", "192x0", "8x8", "axb", "192", "-192x256", "99999x99999"):
        args = [*base, "'--input-size'", repr(size), "'--n'", "'32'", "'--out'", "CASE / 'c.npz'"]
        cases.append(Case("calibration", f"--input-size {size}", cli("rtmw.cli.calib", *args), 2,
                          leftovers="c.npz"))  # fmt: skip
    for n in ("0", "-5", "5"):
        args = [*base, "'--n'", repr(n), "'--out'", "CASE / 'c.npz'"]
        cases.append(Case("calibration", f"--n {n}", cli("rtmw.cli.calib", *args), 1,
                          leftovers="c.npz"))  # fmt: skip
    missing = [
        "'--images'",
        "CASE / 'none'",
        "'--ann'",
        "FIX['train_ann']",
        "'--out'",
        "CASE / 'c.npz'",
    ]
    cases.append(Case("calibration", "image folder missing", cli("rtmw.cli.calib", *missing), 1))
    damage = {
        "bytes flipped": "d = bytearray(Path(FIX['calib']).read_bytes()); d[len(d)//2:len(d)//2+64] = b'\\xff'*64; p.write_bytes(bytes(d))",
        "truncated": "p.write_bytes(Path(FIX['calib']).read_bytes()[:1000])",
        "not npz": "p.write_text('hello')",
        "empty": "p.write_bytes(b'')",
        "noise crops": "import numpy as np; z = dict(np.load(FIX['calib'])); z['inputs'] = np.random.default_rng(0).standard_normal(z['inputs'].shape).astype(np.float32); m = json.loads(str(z['manifest'])); from rtmw.calib.calibset import tensor_sha256; m['tensor_sha256'] = tensor_sha256(z['inputs']); z['manifest'] = np.array(json.dumps(m)); np.savez(p, **z)",
        "NaN crops": "import numpy as np; z = dict(np.load(FIX['calib'])); z['inputs'][0, 0, 0, 0] = np.nan; m = json.loads(str(z['manifest'])); from rtmw.calib.calibset import tensor_sha256; m['tensor_sha256'] = tensor_sha256(z['inputs']); z['manifest'] = np.array(json.dumps(m)); np.savez(p, **z)",
        "unknown manifest key": "import numpy as np; z = dict(np.load(FIX['calib'])); m = json.loads(str(z['manifest'])); m['precison'] = 'int8'; z['manifest'] = np.array(json.dumps(m)); np.savez(p, **z)",
        "other input size": "import numpy as np; z = dict(np.load(FIX['calib'])); m = json.loads(str(z['manifest'])); m['input_size'] = [288, 384]; z['manifest'] = np.array(json.dumps(m)); np.savez(p, **z)",
    }
    for kind, make in damage.items():
        setup = "p = CASE / 'bad.npz'\n" + make
        loaded = api("from rtmw.calib import load_calibration_set\nload_calibration_set(p)")
        cases.append(Case("calibration", f"load: {kind}", setup + "\n" + loaded, 1))
        exported = cli("rtmw.cli.export", "FIX['demo']", "'--targets'", "'ort-int8'", "'--calib'",
                       "p", "'--out'", "CASE / 'out'")  # fmt: skip
        cases.append(Case("calibration", f"export --calib: {kind}", setup + "\n" + exported, 1,
                          leftovers="out/.*"))  # fmt: skip
    return cases


# -- bench, gate, evaluation, training ----------------------------------------------------------
def bench_cases() -> list[Case]:
    art = "FIX['artifact']"
    options = {
        "--device tpu": ("'--device'", "'tpu'"),
        "--batch 0": ("'--batch'", "'0'"),
        "--batch abc": ("'--batch'", "'abc'"),
        "--threads 0": ("'--threads'", "'0'"),
        "--ann without --images": ("'--ann'", "FIX['val_ann']"),
        "--iters -1": ("'--iters'", "'-1'"),
    }
    cases = [Case("bench", kind, cli("rtmw.cli.bench", art, *extra, "'--out'", "CASE / 'r'"), 2)
             for kind, extra in options.items()]  # fmt: skip
    cases.append(Case("bench", "--device cuda without a GPU",
                      cli("rtmw.cli.bench", art, "'--device'", "'cuda'", "'--out'", "CASE / 'r'"), 4))  # fmt: skip
    cases.append(Case("bench", "folder without artifacts",
                      cli("rtmw.cli.bench", "CASE", "'--out'", "CASE / 'r'"), 1))  # fmt: skip
    ref16 = ("a = CASE / 'a16'; shutil.copytree(FIX['artifact16'], a)\n"
             + cli("rtmw.cli.bench", art, "'--images'", "FIX['val_images']", "'--ann'", "FIX['val_ann']",
                   "'--reference'", "a", "'--iters'", "'1'", "'--out'", "CASE / 'r'"))  # fmt: skip
    cases.append(Case("bench", "--reference not FP32", ref16, 1))
    wrong_ann = (
        "anns = json.loads(Path(FIX['val_ann']).read_text())\n"
        "for im in anns['images']: im['width'] *= 2\n"
        "(CASE / 'a.json').write_text(json.dumps(anns))\n"
        + cli("rtmw.cli.bench", art, "'--images'", "FIX['val_images']", "'--ann'", "CASE / 'a.json'",
              "'--iters'", "'1'", "'--out'", "CASE / 'r'")
    )  # fmt: skip
    cases.append(Case("bench", "images of another size than the annotation file", wrong_ann, 1))
    return cases


def gate_cases(px_key: str) -> list[Case]:
    parts = ("body", "foot", "face", "lefthand", "righthand", "wholebody")
    ap = "{" + ", ".join(f"{p} = 1.0" for p in parts) + "}"
    px = "{" + ", ".join(f"{p} = 9.0" for p in parts) + "}"
    good = f"[defaults]\nresamples = 0\nap_drop = {ap}\n{px_key} = {px}\n"
    typos = {
        "key typo ap_dorp": good + "[target.ort-int8]\nap_dorp = {body = 0.1}\n",
        "table typo precison": good + "[precison.int8]\nap_drop = {body = 0.1}\n",
        "precision typo fp61": good + "[precision.fp61]\nap_drop = {body = 0.1}\n",
        "part typo bdoy": good + "[precision.int8]\nap_drop = {bdoy = 0.1}\n",
        "top-level typo": good + "resampels = 5\n",
        "not toml": "[defaults\n",
        "no defaults": "[precision.int8]\nap_drop = {body = 0.1}\n",
        "string budget": good.replace("body = 1.0", "body = 'one'", 1),
    }
    run = "FIX['results']"
    cases = []
    for kind, text in typos.items():
        setup = f"(CASE / 'g.toml').write_text({text!r})\n"
        code = setup + cli("rtmw.cli.bench", "'gate'", "'--reference'", run, "'--candidate'", run,
                           "'--budgets'", "CASE / 'g.toml'")  # fmt: skip
        cases.append(Case("gate", f"budgets: {kind}", code, 2))
    results_edits = {
        "NaN AP": "e['accuracy']['parts']['face']['ap'] = float('nan')",
        "unknown key": "r['entires'] = []",
        "entries not a list": "r['entries'] = {}",
        "other CPU class": "r['environment']['cpu']['isa_class'] = 'x86-64-avx2'; r['environment']['cpu']['flags'] = ['avx2']",
        "schema edited": "r['schema'] = 'other/1'",
        "not json": "BROKEN",
    }
    expects = {"NaN AP": 1, "unknown key": 1, "entries not a list": 1, "schema edited": 1,
               "not json": 1, "other CPU class": 2}  # fmt: skip
    for kind, edit in results_edits.items():
        if edit == "BROKEN":
            setup = "(CASE / 'c.json').write_text('{oops')\n"
        else:
            setup = (
                "r = json.loads(Path(FIX['results']).read_text())\n"
                "e = next(x for x in r['entries'] if x['name'] != 'onnx')\n"
                f"{edit}\n(CASE / 'c.json').write_text(json.dumps(r))\n"
            )
        code = setup + cli("rtmw.cli.bench", "'gate'", "'--reference'", run, "'--candidate'",
                           "CASE / 'c.json'", "'--budgets'", "FIX['budgets']")  # fmt: skip
        cases.append(Case("gate", f"results: {kind}", code, expects[kind]))
    only = cli("rtmw.cli.bench", "'gate'", "FIX['demo']", "'--targets'", "'trt-fp16'", "'--images'",
               "FIX['val_images']", "'--ann'", "FIX['val_ann']", "'--budgets'", "FIX['budgets']",
               "'--out'", "CASE / 'w'")  # fmt: skip
    cases.append(Case("gate", "one-shot on a TensorRT ONNX stand-in", only, 1))
    return cases


def evaluation_cases() -> list[Case]:
    edits = {
        "NaN keypoints": "r['face_kpts'] = [float('nan')] * len(r['face_kpts'])",
        "Inf keypoints": "r['keypoints'][0] = float('inf')",
        "NaN score": "r['score'] = float('nan')",
        "strings": "r['foot_kpts'] = ['a'] * len(r['foot_kpts'])",
        "short part": "r['lefthand_kpts'] = r['lefthand_kpts'][:6]",
        "unknown image": "r['image_id'] = 987654",
        "missing part": "del r['righthand_kpts']",
    }
    cases = []
    for kind, edit in edits.items():
        body = f"""
        from rtmw.data.evaluation import evaluate_wholebody
        results = json.loads(Path(FIX['predictions']).read_text())
        r = results[0]
        {edit}
        evaluate_wholebody(FIX['val_ann'], results, box_source='gt')
        """
        cases.append(Case("evaluation", kind, api(body), 1))
    return cases


def training_cases() -> list[Case]:
    base = [
        "'--images'",
        "FIX['val_images']",
        "'--ann'",
        "FIX['val_ann']",
        "'--out'",
        "CASE / 'run'",
    ]
    options = {"--iters 0": ("'--iters'", "'0'"), "--batch-size 0": ("'--batch-size'", "'0'"),
               "--lr -1": ("'--lr'", "'-1'"), "--val-every 0": ("'--val-every'", "'0'"),
               "--threads 0": ("'--threads'", "'0'"), "--warmup -3": ("'--warmup'", "'-3'")}  # fmt: skip
    cases = [Case("training", kind, cli("rtmw.cli.train", *base, "'--batch-size'", "'2'", *extra), 2,
                  leftovers="run/*.pth") for kind, extra in options.items()]  # fmt: skip
    cases.append(Case("training", "batch larger than the data",
                      cli("rtmw.cli.train", *base, "'--batch-size'", "'500'", "'--iters'", "'1'"), 1,
                      leftovers="run/*.pth"))  # fmt: skip
    cases.append(Case("training", "images missing",
                      cli("rtmw.cli.train", "'--images'", "CASE / 'x'", "'--ann'", "FIX['val_ann']",
                          "'--out'", "CASE / 'run'"), 1))  # fmt: skip
    return cases


def all_cases(px_key: str) -> list[Case]:
    return (checkpoint_cases() + artifact_cases() + runtime_cases() + export_cases()
            + calibration_cases() + bench_cases() + gate_cases(px_key) + evaluation_cases()
            + training_cases())  # fmt: skip


FIXTURES = """
import json, sys, torch
from pathlib import Path
from rtmw.models import demo_checkpoint, build, save_checkpoint
from rtmw.export import export
from rtmw.calib import build_calibration_set, save_calibration_set
from rtmw.data.synthetic import make_dataset
from rtmw.bench import BenchSettings, TimingPlan, bench
work = Path(sys.argv[1]); px_key = sys.argv[2]
demo = demo_checkpoint()
val = make_dataset(work / 'val', 6, seed=11, split='val', progress=False)
train = make_dataset(work / 'train', 24, seed=12, split='train', progress=False)
calib = save_calibration_set(build_calibration_set(train.image_dir, input_size=(192, 256),
    ann_file=train.ann_file, n=32, progress=False), work / 'calib.npz')
made = export(demo, ['onnx', 'onnx-fp16'], work / 'artifacts', overwrite=True)
assert all(r.status == 'ok' for r in made), [r.line() for r in made]
raw = torch.load(demo, map_location='cpu', weights_only=False)
sd = raw['state_dict']
def save(name, state):
    torch.save({'meta': {}, 'state_dict': state}, work / name); return str(work / name)
rtmpose = {k: v for k, v in sd.items() if not k.startswith('neck.') and not k.startswith('head.final_layer2')}
rtmw3d = dict(sd); rtmw3d['head.cls_z.weight'] = torch.zeros(384, 256)
missing = {k: v for i, (k, v) in enumerate(sd.items()) if i % 7}
wrong = dict(sd); key = next(k for k in sd if k.endswith('conv.weight')); wrong[key] = torch.zeros(3, 3, 3, 3)
parts = ('body', 'foot', 'face', 'lefthand', 'righthand', 'wholebody')
(work / 'budgets.toml').write_text('[defaults]\\nresamples = 0\\nap_drop = {' + ', '.join(f'{p} = 1.0' for p in parts)
    + '}\\n' + px_key + ' = {' + ', '.join(f'{p} = 9.0' for p in parts) + '}\\n')
settings = BenchSettings(batches=(1,), plan=TimingPlan(warmup_s=0.0, seconds=None, iters=2, repeats=1),
    image_dir=str(val.image_dir), ann_file=str(val.ann_file), reference=str(work / 'artifacts' / 'onnx'), draw=0)
bench([work / 'artifacts' / 'onnx', work / 'artifacts' / 'onnx-fp16'], settings, work / 'run', progress=False)
fixtures = {
    'demo': str(demo), 'artifact': str(work / 'artifacts' / 'onnx'),
    'artifact16': str(work / 'artifacts' / 'onnx-fp16'),
    'onnx_file': str(work / 'artifacts' / 'onnx' / 'model.onnx'),
    'val_images': str(val.image_dir), 'val_ann': str(val.ann_file),
    'train_images': str(train.image_dir), 'train_ann': str(train.ann_file),
    'calib': str(calib), 'results': str(work / 'run' / 'results.json'),
    'predictions': str(work / 'run' / 'predictions' / 'onnx.json'),
    'budgets': str(work / 'budgets.toml'),
    'rtmpose': save('rtmpose.pth', rtmpose), 'rtmw3d': save('rtmw3d.pth', rtmw3d),
    'missing_keys': save('missing.pth', missing), 'wrong_shape': save('wrong.pth', wrong),
}
(work / 'fixtures.json').write_text(json.dumps(fixtures))
"""


# the one line that names the problem: an error, or the counted summary of a command that
# keeps going past one failing artifact (bench, export), or the gate's verdict line
ERROR_LINES = ("error: ", "Error: ", "bench: ", "export: ", "### rtmw accuracy gate: FAIL")


def classify(case: Case, proc: subprocess.CompletedProcess[str], case_dir: Path) -> Outcome:
    err = (proc.stderr or "") + (proc.stdout or "")
    lines = [ln for ln in err.splitlines() if ln.strip() and "%|" not in ln
             and not ln.startswith(("WARNING", "INFO", "Percentile", "  "))]  # fmt: skip
    message = next(
        (ln for ln in reversed(lines) if ln.startswith(ERROR_LINES)), lines[-1] if lines else ""
    )
    if case.race and "RACE" in proc.stdout:
        verdict = "race"
    elif "Traceback (most recent call last)" in err:
        verdict = "traceback"
    elif proc.returncode == 0:
        verdict = "accepted"
    elif case.leftovers and any(case_dir.glob(case.leftovers)):
        verdict = "leftover"
    elif proc.returncode != case.expect:
        verdict = "wrong exit"
    elif sum(ln.startswith(ERROR_LINES) for ln in lines) != 1:
        verdict = "unclear"
    else:
        verdict = "clean"
    return Outcome(case.family, case.name, verdict, proc.returncode, case.expect, message[:240])


def run_case(case: Case, work: Path, tree: Path, index: int) -> Outcome:
    case_dir = work / "cases" / f"{index:03d}"
    env = {**os.environ, "MATRIX_WORK": str(work), "MATRIX_CASE": str(case_dir),
           "PYTHONPATH": str(tree)}  # fmt: skip
    try:
        proc = subprocess.run([sys.executable, "-c", PRELUDE + "\n" + case.code], env=env,
                              capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    except subprocess.TimeoutExpired:
        return Outcome(case.family, case.name, "hang", -1, case.expect, "timed out")
    return classify(case, proc, case_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", default=str(ROOT), help="rtmw checkout to test")
    parser.add_argument("--out", default=str(ROOT / "results" / "bad-input"))
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    tree = Path(args.tree).resolve()
    px_key = "px_p95" if (tree / "rtmw" / "host.py").exists() else "px_p99"
    work = Path(tempfile.mkdtemp(prefix="rtmw-matrix-"))
    env = {**os.environ, "PYTHONPATH": str(tree)}
    subprocess.run([sys.executable, "-c", FIXTURES, str(work), px_key], env=env, check=True)
    cases = all_cases(px_key)
    with ThreadPoolExecutor(args.jobs) as pool:
        outcomes = list(pool.map(lambda ic: run_case(ic[1], work, tree, ic[0]), enumerate(cases)))
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.verdict] = counts.get(outcome.verdict, 0) + 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = {"tree": str(tree), "cases": len(outcomes), "counts": counts,
               "outcomes": [asdict(o) for o in outcomes]}  # fmt: skip
    (out / "matrix.json").write_text(json.dumps(summary, indent=1) + "\n")
    lines = [f"# Bad-input matrix: {len(outcomes)} cases", "",
             "| verdict | cases |", "|---|---|",
             *(f"| {k} | {v} |" for k, v in sorted(counts.items())), "",
             "| family | case | verdict | exit | expected | message |", "|---|---|---|---|---|---|"]  # fmt: skip
    for o in outcomes:
        msg = o.message.replace("|", "\\|")
        lines.append(
            f"| {o.family} | {o.name} | {o.verdict} | {o.exit_code} | {o.expect} | {msg} |"
        )
    (out / "matrix.md").write_text("\n".join(lines) + "\n")
    print(json.dumps(counts), f"({len(outcomes)} cases) → {out / 'matrix.md'}")


if __name__ == "__main__":
    main()
