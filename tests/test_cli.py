"""The sgxsim command line."""

from __future__ import annotations

import json

from click.testing import CliRunner

from sgxsim.cli import main


def test_sigstruct_text(enarx_vector):
    r = CliRunner().invoke(main, ["sigstruct", str(enarx_vector / "encl.ss")])
    assert r.exit_code == 0, r.output
    assert "b999536238fcf4e9d360ef6cd3e0c20ef8a684c7b93f74a9c4a4c6d517d61fc0" in r.output
    assert "MODE64BIT" in r.output
    assert "signature verifies  yes" in r.output


def test_sigstruct_json(enarx_vector):
    r = CliRunner().invoke(main, ["sigstruct", "--json", str(enarx_vector / "encl.ss")])
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    assert info["mrsigner"] == "2f9f8fd4fe12d77232f1d87571ca8252ca27714efe7705e46222cffd5a22e8c4"
    assert info["signature_valid"] is True and info["attributes"] == 4 and info["xfrm"] == 3


def test_sigstruct_tampered_exits_nonzero(enarx_vector, tmp_path):
    raw = bytearray((enarx_vector / "encl.ss").read_bytes())
    raw[960] ^= 1
    (tmp_path / "bad.ss").write_bytes(raw)
    r = CliRunner().invoke(main, ["sigstruct", "--json", str(tmp_path / "bad.ss")])
    assert r.exit_code == 1
    assert json.loads(r.output)["signature_valid"] is False


def test_sigstruct_wrong_size(enarx_vector, tmp_path):
    # A file that is no SIGSTRUCT is bad input, exit status 2; 1 is kept for
    # "the signature (or header) does not verify" (was 1 for both).
    (tmp_path / "short").write_bytes(b"\0" * 100)
    (tmp_path / "long").write_bytes((enarx_vector / "encl.ss").read_bytes() + b"x")
    for name in ("short", "long"):
        r = CliRunner().invoke(main, ["sigstruct", str(tmp_path / name)])
        assert r.exit_code == 2 and "1808 bytes" in r.output and r.output.count("\n") == 1, r.output
    (tmp_path / "dir.ss").mkdir()
    r = CliRunner().invoke(main, ["sigstruct", str(tmp_path / "dir.ss")])
    assert r.exit_code == 2, r.output


def test_demo_signs_its_own_enclave(tmp_path):
    from sgxsim.demo import demo_pages, measure

    r = CliRunner().invoke(main, ["demo", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "signature verifies  yes" in r.output
    assert measure(demo_pages()).hex() in r.output


def test_demo_out_that_cannot_be_written_is_a_clear_error(tmp_path):
    # --out /proc/x was a FileNotFoundError traceback, a demo.sigstruct
    # that is a directory an IsADirectoryError one (both exit status 1).
    (tmp_path / "file").write_text("")
    r = CliRunner().invoke(main, ["demo", "--out", str(tmp_path / "file" / "sub")])
    assert r.exit_code == 2 and "--out" in r.output and "is not a writable directory" in r.output, r.output
    (tmp_path / "d" / "demo.sigstruct").mkdir(parents=True)
    r = CliRunner().invoke(main, ["demo", "--out", str(tmp_path / "d")])
    assert r.exit_code == 74, r.output  # EX_IOERR: not a verdict
    assert r.output == f"Error: --out {tmp_path / 'd' / 'demo.sigstruct'}: Is a directory\n"


def test_sigstruct_json_fields(enarx_vector):
    r = CliRunner().invoke(main, ["sigstruct", "--json", str(enarx_vector / "encl.ss")])
    info = json.loads(r.output)
    assert info["mrenclave"] == "b999536238fcf4e9d360ef6cd3e0c20ef8a684c7b93f74a9c4a4c6d517d61fc0"
    assert info["header_valid"] is True and info["exponent"] == 3 and info["modulus_bits"] == 3072
    assert info["attributes_names"] == ["MODE64BIT"] and info["xfrm_names"] == ["X87", "SSE"]
    assert info["attributes_mask"] == 0 and info["xfrm_mask"] == 0 and info["misc_mask"] == 0
    assert (info["vendor"], info["isvprodid"], info["isvsvn"], info["miscselect"]) == (0, 0, 0, 0)


def test_sigstruct_invalid_header_exits_nonzero(enarx_vector, tmp_path):
    raw = bytearray((enarx_vector / "encl.ss").read_bytes())
    raw[16] = 0x42  # VENDOR outside {0, 0x8086}: header invalid (and signature broken)
    (tmp_path / "bad.ss").write_bytes(raw)
    r = CliRunner().invoke(main, ["sigstruct", str(tmp_path / "bad.ss")])
    assert r.exit_code == 1 and "INVALID" in r.output


# -- the rough edges of issue 11 -------------------------------------------------------------------
import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402


def _terminal_sigint() -> None:
    """In the child before exec: SIGINT at its default, as in a terminal's
    foreground job (a CI runner or a background shell may start us with it
    ignored, and an ignored SIGINT is inherited and rightly left ignored)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def sgxsim(*args: str, cwd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sgxsim.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, **kw)


def test_selftest_on_an_unknown_kernel_is_a_usage_error():
    r = CliRunner().invoke(main, ["selftest", "--kernel", "foo"])
    assert r.exit_code == 2 and "unknown design 'foo'" in r.output and "1..16" not in r.output


def test_the_generic_linux_kernel_is_refused_for_having_no_sgx_driver(tmp_path):
    # "linux" is registered (exec and fuzz take it; the help said "any
    # registered name"), but selftest called it an unknown design.
    for args in (["selftest", "--kernel", "linux"], ["check", "--design", "linux", "--out", str(tmp_path)]):
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 2, r.output
        assert ("'linux' is a kernel without an SGX driver (no /dev/sgx_enclave); kernels with one: "
                "linux-5.11, linux-6.0") in r.output, r.output
        assert "unknown design" not in r.output and "1..16" not in r.output
    assert "registered kernel with an SGX driver" in " ".join(CliRunner().invoke(main, ["selftest", "--help"])
                                                             .output.split())


def test_tap_totals_do_not_count_skips_as_passes():
    r = CliRunner().invoke(main, ["selftest", "--sgx1"])
    assert r.exit_code == 0, r.output
    skips = r.output.count("# SKIP")
    assert skips == 10
    assert f"# Totals: pass:{16 - skips} fail:0 xfail:0 xpass:0 skip:{skips} error:0" in r.output


def test_selftest_refuses_a_file_that_is_no_elf(tmp_path):
    (tmp_path / "x.elf").write_bytes(b"\0" * 2000)
    r = CliRunner().invoke(main, ["selftest", "--encl-elf", str(tmp_path / "x.elf")])
    assert r.exit_code == 2 and "not an enclave ELF" in r.output and "1..16" not in r.output, r.output


def test_selftest_refuses_an_elf_whose_segments_lie_outside_the_file(tmp_path):
    # A PT_LOAD of 1 TiB was a MemoryError traceback; one whose p_offset lay
    # below the TCS segment's was taken, and then all 16 tests said "# error:
    # argument out of range" (a Python message).
    import struct

    from sgxsim.user import test_encl
    from sgxsim.user.elf import write_elf

    good = write_elf([(n, o, p, d) for n, (o, p, d) in test_encl.image().items()],
                     test_encl.program().symbols)
    phoff, = struct.unpack_from("<Q", good, 0x20)
    for name, seg, field, value, text in (  # field: the byte offset in Elf64_Phdr
            ("huge.elf", 1, 32, 1 << 40, "segment 1: p_offset 0x3000 + p_filesz 0x10000000000 lies past"),
            ("low.elf", 2, 8, 0, "segment 2: p_offset 0x0 lies below the TCS segment's (0x1000)")):
        elf = bytearray(good)
        struct.pack_into("<Q", elf, phoff + seg * 56 + field, value)
        (tmp_path / name).write_bytes(elf)
        r = CliRunner().invoke(main, ["selftest", "--encl-elf", str(tmp_path / name)])
        assert r.exit_code == 2, r.output  # bad input; 1 is "a test failed"
        assert r.output.startswith(f"Error: {tmp_path / name}: not an enclave ELF the selftests' loader can "
                                   f"load: {text}"), r.output
        assert r.output.count("\n") == 1 and "1..16" not in r.output


def test_unwritable_out_and_html_are_refused_before_the_search(tmp_path):
    (tmp_path / "file").write_text("")
    for opt in ("--out", "--html"):
        start = time.monotonic()
        r = CliRunner().invoke(main, ["check", opt, str(tmp_path / "file" / "sub")])
        assert r.exit_code == 2 and "is not a writable directory" in r.output, r.output
        assert time.monotonic() - start < 5


def test_an_output_file_that_cannot_be_written_after_the_work_is_a_clear_error(tmp_path):
    # The directory is probed before the work, but a file's name taken by a
    # directory was an IsADirectoryError traceback (exit status 1) after it:
    # check's scenario files (also from forked design workers and in
    # simulation) and HTML pages, report's pages and index.
    check = ["check", "--design", "linux-6.0", "--property", "w-xor-x"]
    for n, (args, taken, opt) in enumerate((
            ([*check, "--depth", "3", "--out", "{d}"], "linux-6.0--w-xor-x.toml", "--out"),
            ([*check, "--design", "no-hook", "--depth", "3", "--workers", "2", "--out", "{d}"],
             "linux-6.0--w-xor-x.toml", "--out"),
            ([*check, "--simulate", "--pages", "3", "--walks", "20", "--seed", "2", "--out", "{d}"],
             "linux-6.0--w-xor-x--sim.toml", "--out"),
            ([*check, "--depth", "3", "--out", str(tmp_path / "sc"), "--html", "{d}"],
             "linux-6.0--w-xor-x.html", "--html"),
            (["report", "{f}", "--out", "{d}"], "s.html", "--out"),
            (["report", "{f}", "--out", "{d}"], "index.html", "--out"))):
        d = tmp_path / str(n)
        (d / taken).mkdir(parents=True)
        f = tmp_path / "s.toml"
        f.write_text(SCENARIO)
        r = CliRunner().invoke(main, [a.format(d=d, f=f) for a in args])
        assert r.exit_code == 74, (args, r.output)  # EX_IOERR, apart from every verdict
        assert r.output.splitlines()[-1] == f"Error: {opt} {d / taken}: Is a directory", (args, r.output)
        assert r.exception is None or isinstance(r.exception, SystemExit), (args, r.exception)


def test_run_html_that_fails_after_the_replay_is_not_a_verdict(tmp_path):
    # run's exit status 1 means "not the expected verdict"; a full disk met
    # writing --html after a replay that gave the expected one was 1 too.
    f = tmp_path / "s.toml"
    f.write_text(SCENARIO)
    r = CliRunner().invoke(main, ["run", str(f), "--html", "/dev/full"])  # ENOSPC on write
    assert "verdict: holds" in r.output
    assert r.exit_code == 74, r.output  # EX_IOERR
    assert r.output.splitlines()[-1] == "Error: --html /dev/full: No space left on device"


def test_progress_goes_to_a_piped_stderr_and_counts_agree(tmp_path):
    r = sgxsim("check", "--design", "linux-5.11", "--property", "restrict", "--depth", "3",
               "--actions", "mmap,add_pages,init,load", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    levels = [line for line in r.stderr.splitlines() if "linux-5.11: level" in line]
    assert [line.split("level ")[1].split(",")[0] for line in levels] == ["1/3", "2/3", "3/3"]
    assert "/s)" in levels[-1] and "0/1 decided" in levels[-1]
    states = levels[-1].split(", ")[1].split()[0]
    assert f"linux-5.11: {states} distinct states explored, depth 3" in r.stdout


def test_ctrl_c_with_workers_stops_cleanly(tmp_path):
    p = subprocess.Popen([sys.executable, "-m", "sgxsim.cli", "check", "--workers", "2", "--depth", "8"],
                         cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True, preexec_fn=_terminal_sigint)
    time.sleep(6)  # the workers are exploring
    os.killpg(p.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "interrupted" in err


def test_ctrl_c_in_any_command_exits_130_without_aborted():
    # Outside the search and the fuzzer (which say more), Ctrl-C gave click's
    # "Aborted!" and exit status 1, for run, fuzz and sigstruct a verdict.
    # selftest runs long enough to be interrupted after its first line.
    p = subprocess.Popen([sys.executable, "-m", "sgxsim.cli", "selftest"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True,
                         preexec_fn=_terminal_sigint)
    try:
        assert p.stdout.readline() == "TAP version 13\n"
        os.killpg(p.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, err[-2000:]
    assert err == "sgxsim selftest: interrupted\n"


WALKING = """
import sys

from sgxsim.check.properties import Property, register_property


@register_property
class Walking(Property):
    name = "walking"
    kind = "safety"
    said = False

    def check(self, view, before, after, events):
        if not Walking.said:  # the walks have begun (once per process)
            Walking.said = True
            sys.stderr.write("walking\\n")
            sys.stderr.flush()
        return None
"""


def test_ctrl_c_during_a_simulation_stops_cleanly(tmp_path):
    # It printed click's "Aborted!" and exited 1 (and with --workers, the
    # workers' tracebacks); now as the exhaustive search: 130 and a line.
    (tmp_path / "walking.py").write_text(WALKING)
    for workers in ("1", "2"):
        p = subprocess.Popen([sys.executable, "-m", "sgxsim.cli", "check", "--simulate", "--design",
                              "linux-6.0", "--property-file", "walking.py", "--property", "walking",
                              "--walks", "100000000", "--workers", workers, "--out", "sc"],
                             cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True, preexec_fn=_terminal_sigint)
        try:
            assert p.stderr.readline() == "walking\n"
            os.killpg(p.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
            out, err = p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
        assert p.returncode == 130, (workers, err[-2000:])
        assert "Traceback" not in err and "Aborted" not in err, err[-2000:]
        assert err.splitlines()[-1] == ("interrupted: no results (the scenario files of designs already "
                                        "simulated are in sc)"), err
        assert out == ""


def test_progress_on_a_terminal_is_a_rich_bar(capsys):
    from types import SimpleNamespace

    from sgxsim.check.cli import Progress

    exp = SimpleNamespace(design="linux-6.0", depth=3, states=1200, seconds=4.0, findings={"restrict": 1})
    Progress(6, 2, rich_output=True)(exp)
    Progress(6, 2, rich_output=False)(exp)
    err = capsys.readouterr().err.splitlines()
    assert err[0].strip() == "███░░░ linux-6.0: level 3/6, 1200 states (300/s), 1/2 decided, 4.0 s"
    assert err[1] == "  linux-6.0: level 3/6, 1200 states (300/s), 1/2 decided, 4.0 s"


SCENARIO = ('design = "linux-6.0"\nproperty = "w-xor-x"\nexpect = "holds"\n\n'
            '[[step]]\naction = "mmap"\noffset = 0\nlength = 0x1000\nprot = "RW"\n')


def test_run_refuses_an_unwritable_html_before_the_replay(tmp_path):
    # Exit status 1 means "not the expected verdict" (docs/scenarios.md): an
    # --html that cannot be written is a usage error, 2, found before the
    # replay prints anything (it was 1, after the whole replay).
    f = tmp_path / "s.toml"
    f.write_text(SCENARIO)
    (tmp_path / "file").write_text("")
    r = CliRunner().invoke(main, ["run", str(f), "--html", str(tmp_path / "file" / "out.html")])
    assert r.exit_code == 2, r.output
    assert "--html" in r.output and "not a writable directory" in r.output
    assert "verdict" not in r.output
    # A missing directory is made, as check --html makes its own.
    r = CliRunner().invoke(main, ["run", str(f), "--html", str(tmp_path / "new" / "out.html")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "new" / "out.html").read_text().startswith("<!DOCTYPE html>")


def test_check_html_is_written_in_simulation_mode_and_with_json(tmp_path):
    # --html was checked writable and then ignored by --simulate and by --json.
    sim = ["check", "--simulate", "--design", "linux-6.0", "--property", "w-xor-x", "--pages", "3",
           "--walks", "20", "--walk-depth", "30", "--seed", "2", "--out", str(tmp_path / "sc")]
    r = CliRunner().invoke(main, [*sim, "--html", str(tmp_path / "sim")])
    assert r.exit_code == 0, r.output
    assert "violated (walk 13" in r.output and f"HTML report: {tmp_path / 'sim' / 'index.html'}" in r.output
    index = (tmp_path / "sim" / "index.html").read_text()
    assert 'href="linux-6.0--w-xor-x.html"' in index and "walks" in index
    assert "up to the depth bound" not in index  # a walk that finds nothing proves nothing
    page = (tmp_path / "sim" / "linux-6.0--w-xor-x.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    r = CliRunner().invoke(main, [*sim, "--json", "--html", str(tmp_path / "simjson")])
    assert r.exit_code == 0, r.output
    json.loads(r.stdout)  # stdout stays one JSON object
    assert (tmp_path / "simjson" / "linux-6.0--w-xor-x.html").is_file()
    r = CliRunner().invoke(main, ["check", "--design", "linux-6.0", "--property", "w-xor-x",
                                                  "--depth", "3", "--json", "--out", str(tmp_path / "sc"),
                                                  "--html", str(tmp_path / "bfs")])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["results"][0]["verdict"] == "violated"
    assert (tmp_path / "bfs" / "linux-6.0--w-xor-x.html").is_file()


def test_options_of_the_other_mode_are_refused_not_ignored(tmp_path):
    # --walks, --walk-depth and --seed say "With --simulate"; --depth and
    # --frontier-mem bound the exhaustive search only.  Each was silently
    # ignored in the other mode (a --simulate --depth 30 run did 30-action
    # walks whatever --depth said); now a usage error, as --address without
    # --engine ray is.
    base = ["check", "--design", "linux-6.0", "--property", "w-xor-x"]
    for extra, message in [(["--walks", "5"], "--walks needs --simulate"),
                           (["--walk-depth", "5"], "--walk-depth needs --simulate"),
                           (["--seed", "3"], "--seed needs --simulate"),
                           (["--simulate", "--depth", "3"], "--depth bounds the exhaustive search"),
                           (["--simulate", "--frontier-mem", "8"], "--frontier-mem bounds the exhaustive"),
                           # The symmetry reduction is the search's: the walks ignored it.
                           (["--simulate", "--no-symmetry"],
                            "--no-symmetry: the symmetry reduction is the exhaustive search's; --simulate "
                            "walks without it"),
                           (["--simulate", "--symmetry"], "--symmetry: the symmetry reduction")]:
        r = CliRunner().invoke(main, [*base, *extra])
        assert r.exit_code == 2 and message in r.output, (extra, r.output)
    # The defaults given explicitly are fine.
    r = CliRunner().invoke(main, [*base, "--depth", "0", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output


def test_comma_lists_refuse_empty_lists_and_empty_items(tmp_path):
    # --map-perms '' was taken as not given (--perms '' was refused), and an
    # empty item (R,,RW) was dropped; every comma-list option refuses both.
    base = ["check", "--design", "no-hook", "--property", "w-xor-x", "--depth", "1", "--out", str(tmp_path)]
    for opt, a, b in (("--perms", "R", "RW"), ("--map-perms", "R", "RW"), ("--sources", "image", "anon"),
                      ("--actions", "mmap", "init")):
        for text in ("", ",", f"{a},,{b}", f"{a},"):
            r = CliRunner().invoke(main, [*base, opt, text])
            assert r.exit_code == 2, (opt, text, r.output)
            assert f"{opt} takes a comma list of " in r.output and f"not {text!r}" in r.output, r.output
    # Spaces around items are fine, and an item named twice counts once.
    r = CliRunner().invoke(main, [*base, "--json", "--perms", "R, RW", "--map-perms", "RW,RW"])
    assert r.exit_code == 0, r.output
    r2 = CliRunner().invoke(main, [*base, "--json", "--perms", "R,RW", "--map-perms", "RW"])
    assert json.loads(r.stdout)["results"][0]["states"] == json.loads(r2.stdout)["results"][0]["states"]


MDWE_SCENARIO = ('design = "linux-6.12"\nproperty = "w-xor-x"\nexpect = "holds"\n\n[scope]\nmdwe = true\n\n'
                 '[[step]]\naction = "mmap"\noffset = 0\nlength = 0x1000\nprot = "RWX"\n')


def test_mdwe_on_a_design_without_it_is_a_usage_error(tmp_path):
    # It was exit status 1 -- for run the status of "this design stops the
    # trace", so `sgxsim run FILE --design linux-5.11 || echo stopped` said
    # stopped -- with a message about --mdwe for a scenario file's key.
    f = tmp_path / "mdwe.toml"
    f.write_text(MDWE_SCENARIO)
    assert CliRunner().invoke(main, ["run", str(f)]).exit_code == 0
    for args in (["run", str(f), "--design", "linux-5.11"],
                 ["explain", str(f), "--step", "1", "--design", "linux-5.11"],
                 ["report", str(f), "--out", str(tmp_path / "rep"), "--design", "linux-5.11"]):
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 2, (args, r.output)
        assert "Invalid value for --design: design 'linux-5.11' has no MDWE" in r.output, r.output
        assert "scope.mdwe" in r.output and "verdict" not in r.output
    f.write_text(MDWE_SCENARIO.replace("linux-6.12", "linux-6.0"))
    r = CliRunner().invoke(main, ["run", str(f)])
    assert r.exit_code == 2 and f"{f}: key 'scope.mdwe': design 'linux-6.0' has no MDWE" in r.output, r.output
    r = CliRunner().invoke(main, ["check", "--mdwe", "--design", "linux-6.12", "--design", "linux-5.11",
                                  "--depth", "0", "--out", str(tmp_path)])
    assert r.exit_code == 2, r.output
    assert "Invalid value for --mdwe: design 'linux-5.11' has no MDWE (its mm is Linux 5.11" in r.output


def test_report_gives_files_of_the_same_name_pages_of_their_own(tmp_path):
    # a/x.toml and b/x.toml were both drawn to x.html: the second page
    # replaced the first and the index linked both cells to it.
    for sub, prop in (("a", "w-xor-x"), ("b", "no-escalation")):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "x.toml").write_text(SCENARIO.replace("w-xor-x", prop))
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["report", str(tmp_path / "a" / "x.toml"), str(tmp_path / "b" / "x.toml"),
                                  "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert f"{out / 'x.html'}: linux-6.0 / w-xor-x: holds" in r.output
    assert f"{out / 'x-2.html'}: linux-6.0 / no-escalation: holds" in r.output
    assert "w-xor-x" in (out / "x.html").read_text() and "no-escalation" in (out / "x-2.html").read_text()
    index = (out / "index.html").read_text()
    assert 'href="x.html"' in index and 'href="x-2.html"' in index


def test_report_of_a_scenario_named_index_keeps_its_page(tmp_path):
    # index.toml was drawn to index.html and then overwritten by the index
    # (whose one link pointed at itself), exit status 0.
    (tmp_path / "index.toml").write_text(SCENARIO)
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["report", str(tmp_path / "index.toml"), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert f"{out / 'index-2.html'}: linux-6.0 / w-xor-x: holds" in r.output
    assert 'href="index-2.html"' in (out / "index.html").read_text()
    assert "mmap" in (out / "index-2.html").read_text()


def test_a_design_or_property_named_twice_is_checked_once(tmp_path):
    # It was explored twice (two JSON results; the matrix showed one).
    r = CliRunner().invoke(main, ["check", "--design", "linux-6.0", "--design", "linux-6.0", "--property",
                                  "w-xor-x", "--property", "w-xor-x", "--depth", "1", "--json",
                                  "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert [(x["design"], x["property"]) for x in json.loads(r.stdout)["results"]] == [("linux-6.0", "w-xor-x")]


def test_an_endless_input_file_is_refused_not_read_for_ever(tmp_path):
    # /dev/zero (or any endless stream) as a scenario, SIGSTRUCT or enclave
    # ELF was read until memory ran out; a pipe (/dev/stdin) still works.
    import subprocess
    import sys

    for args, text in ((["sigstruct", "/dev/zero"], "a SIGSTRUCT is 1808 bytes, /dev/zero has more"),
                       (["run", "/dev/zero"], "/dev/zero: larger than 16 MiB: not a scenario file"),
                       (["explain", "/dev/zero", "--step", "1"], "larger than 16 MiB"),
                       (["selftest", "--encl-elf", "/dev/zero"], "/dev/zero: larger than 64 MiB")):
        r = subprocess.run([sys.executable, "-m", "sgxsim.cli", *args], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 2 and text in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "sgxsim.cli", "run", "/dev/stdin"], input=SCENARIO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "verdict: holds" in r.stdout, r.stderr


def test_an_output_that_is_an_input_is_refused_before_the_work(tmp_path):
    # run s.toml --html s.toml replaced the scenario by its page (exit 0),
    # and the next run of it was a TOML error; report --out could do the
    # same to a scenario named x.html or index.html.
    f = tmp_path / "s.toml"
    f.write_text(SCENARIO)
    (tmp_path / "link.toml").symlink_to(f)
    for html in (f, tmp_path / "." / "s.toml", tmp_path / "link.toml"):
        r = CliRunner().invoke(main, ["run", str(f), "--html", str(html)])
        assert r.exit_code == 2 and "verdict" not in r.output, r.output
        assert r.output.splitlines()[-1] == (f"Error: Invalid value for --html: {html} is the input file {f}: "
                                             "it would be overwritten")
    d = tmp_path / "d.py"
    d.write_text("")
    r = CliRunner().invoke(main, ["run", str(f), "--design-file", str(d), "--html", str(d)])
    assert r.exit_code == 2 and "is the input file" in r.output, r.output
    assert f.read_text() == SCENARIO and d.read_text() == ""
    for name in ("x.html", "index.html"):
        g = tmp_path / name
        g.write_text(SCENARIO)
        r = CliRunner().invoke(main, ["report", str(f), str(g), "--out", str(tmp_path)])
        assert r.exit_code == 2 and f"{g} is the input file {g}" in r.output, r.output
        assert g.read_text() == SCENARIO and not (tmp_path / "s.html").exists()


def test_report_index_has_a_row_and_a_link_per_file_and_its_own_note(tmp_path):
    # Two files on the same design and property: both pages were written,
    # the index linked only the second; and it was titled "sgxsim check"
    # with the checker's note (shortest trace, depth bound).
    for name in ("a", "b"):
        (tmp_path / f"{name}.toml").write_text(SCENARIO)
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["report", str(tmp_path / "a.toml"), str(tmp_path / "b.toml"),
                                  "--out", str(out)])
    assert r.exit_code == 0, r.output
    index = (out / "index.html").read_text()
    assert index.count('href="a.html"') == 2 and index.count('href="b.html"') == 2
    assert "<title>sgxsim report</title>" in index and "sgxsim check" not in index
    assert "depth bound" not in index and "shortest" not in index
    assert index.count("holds after 1 step<") == 2


def test_check_index_links_are_percent_encoded():
    from sgxsim.report import render_index

    html = render_index([{"design": "d#1", "property": "p?x", "verdict": "violated", "trace": [{}]}],
                        {("d#1", "p?x"): "d#1--p?x.html"})
    assert 'href="d%231--p%3Fx.html"' in html and ">violated (1)</a>" in html and "<th>d#1</th>" in html
