"""Special files, archive bombs and broken archives (issue 15, items 5 and 6): clean errors, bounded time
and memory, and a FIFO or device is never replaced by a regular file."""
from __future__ import annotations

import contextlib
import os
import resource
import signal
import stat
import struct
import subprocess
import sys
import threading
import time
import zlib

import numpy as np
import pytest

from conftest import ROOT, SPECS

LSTM = SPECS / "lstm.yaml"

# The CLI in a fresh interpreter that reports its peak memory on stderr when it exits: VmHWM, the high-water mark
# of this program's own memory (ru_maxrss would also count the pytest process it was forked from, before exec).
_MEASURED = ("import atexit, sys\n"
             "def _peak():\n"
             "    with open('/proc/self/status') as f:\n"
             "        kb = next(int(line.split()[1]) for line in f if line.startswith('VmHWM:'))\n"
             "    sys.stderr.write('\\nmaxrss_kb=%d\\n' % kb)\n"
             "atexit.register(_peak)\n"
             "from rnncompile.cli import main\n"
             "main(sys.argv[1:])\n")


def _limit_memory():
    """A runaway read in the child fails with MemoryError instead of taking the machine's memory."""
    resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))


def run_cli(*args, timeout=60, cwd=None):
    """(exit code, stdout, stderr, seconds, peak MiB) of the CLI in a subprocess; a hang fails the test."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.monotonic()
    try:
        p = subprocess.run([sys.executable, "-c", _MEASURED, *map(str, args)], capture_output=True, text=True,
                           timeout=timeout, env=env, cwd=cwd, preexec_fn=_limit_memory)
    except subprocess.TimeoutExpired:
        pytest.fail(f"rnncompile {' '.join(map(str, args))} hung for {timeout} s")
    seconds = time.monotonic() - start
    peak = [int(line.split("=")[1]) for line in p.stderr.splitlines() if line.startswith("maxrss_kb=")]
    return p.returncode, p.stdout, p.stderr, seconds, (peak[-1] / 1024 if peak else float("nan"))


@contextlib.contextmanager
def unblocked_after(fifo, seconds=5.0):
    """Opens `fifo` for writing after `seconds`, so a reader stuck on it gets EOF and the test ends (late)."""
    done = threading.Event()

    def writer():
        if done.wait(seconds):
            return
        while not done.is_set():
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:  # no reader yet
                time.sleep(0.05)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def assert_clean(code, err, *phrases):
    assert code == 1, err
    assert "internal error" not in err and "Traceback" not in err, err
    for phrase in phrases:
        assert phrase in err, err


# ---- hand-made archives ----------------------------------------------------------------------------------


def npy_header(shape, descr="<f8", pad_to=64, version=1) -> bytes:
    start = 10 if version == 1 else 12  # magic, version and the header's length
    text = repr({"descr": descr, "fortran_order": False, "shape": tuple(shape)})
    text += " " * (-(start + len(text) + 1) % pad_to) + "\n"
    return b"\x93NUMPY" + bytes([version, 0]) + struct.pack("<H" if version == 1 else "<I", len(text)) + text.encode()


def write_zip(path, members) -> None:
    """members: (name, packed bytes, crc, unpacked size, method 0 stored / 8 deflate). Plain zip, no zip64."""
    local, central = bytearray(), bytearray()
    for name, packed, crc, size, method in members:
        offset = len(local)
        n = name.encode()
        local += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, method, 0, 0, crc, len(packed), size, len(n), 0)
        local += n + packed
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, method, 0, 0, crc, len(packed), size,
                               len(n), 0, 0, 0, 0, 0, offset) + n
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(members), len(members), len(central), len(local), 0)
    path.write_bytes(bytes(local + central + end))


def zeros_deflated(n_mib: int, prefix: bytes) -> bytes:
    """A raw deflate stream of `prefix` then n_mib MiB of zeros, made in milliseconds: after a full flush
    the compressor starts afresh, so every further MiB of zeros packs to the same bytes."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = c.compress(prefix + bytes(2**20 - len(prefix))) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(bytes(2**20)) + c.flush(zlib.Z_FULL_FLUSH)
    return head + block * (n_mib - 1) + c.flush()


@pytest.fixture
def weights(tmp_path):
    path = tmp_path / "w.npz"
    from rnncompile import api, compile

    np.savez(path, **api.make_params(compile(str(LSTM))))
    return path


# ---- special files ---------------------------------------------------------------------------------------


def test_save_weights_onto_a_fifo_writes_through_it(tmp_path, cli):
    fifo = tmp_path / "w.npz"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    code, out, err = cli("run", LSTM, "--save-weights", fifo)
    try:
        data, _ = reader.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        reader.kill()
        data = b""
    assert code == 0, err
    assert stat.S_ISFIFO(os.stat(fifo).st_mode), "the FIFO was replaced by a regular file"
    (tmp_path / "got.npz").write_bytes(data)
    with np.load(tmp_path / "got.npz") as f:
        assert "W_i" in f.files


def test_output_through_a_link_to_a_device_keeps_the_link(tmp_path, cli):
    link = tmp_path / "schema.json"
    link.symlink_to("/dev/null")
    code, out, err = cli("schema", "-o", link)
    assert code == 0, err
    assert link.is_symlink() and os.readlink(link) == "/dev/null"
    assert list(tmp_path.iterdir()) == [link]  # no temporary file left beside it


@pytest.mark.parametrize("option", ["spec", "--input", "--init-state", "--weights", "--trees"])
def test_a_fifo_nobody_writes_is_refused_at_once(tmp_path, cli, option):
    fifo = tmp_path / ("in.yaml" if option == "spec" else "in.txt" if option == "--trees" else "in.npz")
    os.mkfifo(fifo)
    spec = SPECS / ("rvnn.yaml" if option == "--trees" else "lstm.yaml")
    args = ("validate", fifo) if option == "spec" else ("run", spec, option, fifo)
    start = time.monotonic()
    with unblocked_after(fifo):
        code, out, err = cli(*args)
    assert time.monotonic() - start < 4, "waited for a writer"
    assert_clean(code, err, str(fifo), "is a FIFO (named pipe); rnncompile reads regular files only")


@pytest.mark.parametrize("option", ["--input", "--trees"])
def test_dev_zero_is_refused_before_reading(tmp_path, option):
    zero = tmp_path / ("zero.json" if option == "--input" else "zero.txt")
    zero.symlink_to("/dev/zero")
    spec = SPECS / ("rvnn.yaml" if option == "--trees" else "lstm.yaml")
    code, out, err, seconds, peak = run_cli("run", spec, option, zero, timeout=20)
    assert_clean(code, err, "is a character device; rnncompile reads regular files only")
    assert seconds < 10 and peak < 400, (seconds, peak)


def test_vocab_reader_refuses_dev_zero_and_fifos(tmp_path):
    from rnncompile.files import FileReadError
    from rnncompile.vocab import read_vocab_file

    start = time.monotonic()
    with pytest.raises(FileReadError, match="is a character device") as e:
        read_vocab_file("/dev/zero")
    assert "regular files only" in e.value.reason
    fifo = tmp_path / "words.txt"
    os.mkfifo(fifo)
    with pytest.raises(FileReadError, match="FIFO"):
        read_vocab_file(fifo)
    assert time.monotonic() - start < 2


def test_oversize_vocab_file_is_refused(tmp_path, cli):
    with open(tmp_path / "words.txt", "wb") as f:
        f.truncate(100 * 2**20)
    spec = (SPECS / "char_predictor.yaml").read_text()
    start = spec.index("  tokens:")
    end = spec.index("\n", spec.index("]", start))
    (tmp_path / "s.yaml").write_text(spec[:start] + "  file: words.txt" + spec[end:])
    code, out, err = cli("validate", tmp_path / "s.yaml")
    assert_clean(code, err, "cannot read the vocabulary file `words.txt` (is 100 MiB; the limit is 64 MiB)")


def test_a_device_as_vocab_file_is_refused_at_once(tmp_path, cli):
    spec = (SPECS / "char_predictor.yaml").read_text()
    start = spec.index("  tokens:")
    end = spec.index("\n", spec.index("]", start))
    (tmp_path / "s.yaml").write_text(spec[:start] + "  file: /dev/zero" + spec[end:])
    begun = time.monotonic()
    code, out, err = cli("validate", tmp_path / "s.yaml")
    assert time.monotonic() - begun < 5
    assert_clean(code, err, "cannot read the vocabulary file `/dev/zero` (is a character device; rnncompile reads "
                            "regular files only)")


def test_oversize_json_is_refused_before_reading(tmp_path):
    big = tmp_path / "big.json"
    with open(big, "wb") as f:
        f.truncate(3 * 2**30)  # sparse: 3 GiB on paper, nothing on disk
    code, out, err, seconds, peak = run_cli("run", LSTM, "--input", big, timeout=60)
    assert_clean(code, err, "big.json: is 3 GiB; the limit is 64 MiB")
    assert seconds < 10 and peak < 400, (seconds, peak)


# ---- archive bombs ---------------------------------------------------------------------------------------


def test_zip_bomb_is_refused_from_the_zip_directory(tmp_path):
    """3 GiB of zeros packed into 3 MiB: refused from the sizes the zip directory declares, before one byte
    is unpacked (the CRC is not even computed: nothing may read that far)."""
    header = npy_header((3 * 2**30 // 8,))
    packed = zeros_deflated(3 * 1024, header)
    bomb = tmp_path / "bomb.npz"
    write_zip(bomb, [("W_i.npy", packed, 0, len(header) + 3 * 2**30, 8)])
    assert bomb.stat().st_size < 8 * 2**20
    code, out, err, seconds, peak = run_cli("run", LSTM, "--weights", bomb, timeout=120)
    assert_clean(code, err, "bomb.npz: member `W_i.npy` unpacks to", "refused before reading")
    assert seconds < 10 and peak < 400, (seconds, peak)


def test_npy_header_claiming_a_huge_shape_is_refused(tmp_path):
    header = npy_header((10**6, 10**6), "<f4")
    body = header + bytes(64)
    bomb = tmp_path / "claims.npz"
    write_zip(bomb, [("W_i.npy", body, zlib.crc32(body), len(body), 0)])
    code, out, err, seconds, peak = run_cli("run", LSTM, "--weights", bomb, timeout=60)
    assert_clean(code, err, "claims.npz: member `W_i.npy`: the header declares shape [1000000, 1000000]",
                 "refused before reading")
    assert seconds < 10 and peak < 400, (seconds, peak)


def test_huge_npy_header_is_refused(tmp_path, cli):
    header = npy_header((2, 3), pad_to=2**16 - 64, version=2)
    body = header + bytes(48)
    bomb = tmp_path / "header.npz"
    write_zip(bomb, [("W_i.npy", body, zlib.crc32(body), len(body), 0)])
    code, out, err = cli("run", LSTM, "--weights", bomb)
    assert_clean(code, err, "header.npz: member `W_i.npy`: its .npy header is", "bytes; the limit is 10000")


def test_zip_directory_bomb_is_refused(tmp_path, cli):
    """100,000 directory entries that all point at one small member."""
    body = npy_header((1,)) + bytes(8)
    n = b"%06d.npy"
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, zlib.crc32(body), len(body), len(body),
                        10, 0) + b"000000.npy" + body
    entry = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, zlib.crc32(body), len(body),
                        len(body), 10, 0, 0, 0, 0, 0, 0)
    central = b"".join(entry + n % i for i in range(100_000))
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFE, 0xFFFE, len(central), len(local), 0)
    (tmp_path / "many.npz").write_bytes(local + central + end)
    start = time.monotonic()
    code, out, err = cli("run", LSTM, "--weights", tmp_path / "many.npz")
    assert_clean(code, err, "many.npz: its zip directory is 5600000 bytes", "the limit is")
    assert time.monotonic() - start < 5


# ---- broken archives and arrays --------------------------------------------------------------------------


def test_bad_crc_is_a_clean_error(tmp_path, cli, weights):
    data = bytearray(weights.read_bytes())
    with np.load(weights) as f:
        assert f.files[0] == "W_i"
    for at in (14, data.find(b"PK\x01\x02") + 16):  # W_i's CRC in its local header and in the zip directory
        data[at] ^= 0xFF
    bad = tmp_path / "crc.npz"
    bad.write_bytes(bytes(data))
    code, out, err = cli("run", LSTM, "--weights", bad)
    assert_clean(code, err, "crc.npz: not a readable .npz file: damaged or truncated", "Bad CRC-32")


@pytest.mark.parametrize("keep", [0.5, 0.99])
def test_truncated_npz_is_a_clean_error(tmp_path, cli, weights, keep):
    data = weights.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(data[: int(len(data) * keep)])
    code, out, err = cli("run", LSTM, "--weights", cut)
    assert_clean(code, err, "cut.npz: not an .npz file (no zip directory: truncated, or another format)")


def test_not_a_zip_is_a_clean_error(tmp_path, cli):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 4)
    code, out, err = cli("run", LSTM, "--input", junk)
    assert_clean(code, err, "junk.npz: not an .npz file")


def test_truncated_npy_is_a_clean_error(tmp_path, cli):
    full = tmp_path / "full.npy"
    np.save(full, np.zeros((1, 10, 8), np.float32))
    cut = tmp_path / "x.npy"
    cut.write_bytes(full.read_bytes()[:-100])
    code, out, err = cli("run", LSTM, "--input", cut)
    assert_clean(code, err, "x.npy: the header declares shape [1, 10, 8] (320 bytes of float32), but the file "
                            "holds 220 bytes of data: truncated or damaged")


def test_npy_header_claiming_a_huge_shape_as_input(tmp_path):
    bad = tmp_path / "x.npy"
    bad.write_bytes(npy_header((2**20, 2**20, 8), "<f4") + bytes(32))
    code, out, err, seconds, peak = run_cli("run", LSTM, "--input", bad)
    assert_clean(code, err, "x.npy: the header declares shape [1048576, 1048576, 8]", "refused before reading")
    assert peak < 400


def test_json_nested_5000_deep_is_a_clean_error(tmp_path, cli):
    deep = tmp_path / "deep.json"
    deep.write_text('{"x": ' + "[" * 5000 + "]" * 5000 + "}")
    code, out, err = cli("run", LSTM, "--input", deep)
    assert_clean(code, err, "deep.json: the JSON nests too deeply")


def test_sigterm_during_output_leaves_no_temporary_file(tmp_path):
    out = tmp_path / "out.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen([sys.executable, "-c", "from rnncompile.cli import main; main()", "run", str(LSTM),
                          "--steps", "1000", "--batch", "64", "-o", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while not any(f.name.startswith(".out.json.") for f in tmp_path.iterdir()):
        assert p.poll() is None and time.monotonic() < deadline, "the run ended before writing its output"
        time.sleep(0.02)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=30)
    assert p.returncode == 128 + signal.SIGTERM, err
    assert "terminated by SIGTERM" in err
    assert list(tmp_path.iterdir()) == []

