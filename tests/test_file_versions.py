"""resolv.conf and hosts kept while their version holds (`janus_net._profiles.file_versions`).

The promise: a lookup never answers from anything the file no longer says. Every way a file
can change under a name -- rewritten in place with the same size and its mtime set back,
replaced by a rename, rewritten within the file system clock's tick of the read, the
environment changed -- is tried here against real files, and the kept content is shown to be
used (no open(2) at all: the fault seam would fail it) only when nothing changed.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import janus_net as jn
from janus_net._profiles import file_versions, hosts_file
from janus_net._profiles.resolver_config import ResolverConfig
from janus_net.testing import fail

OLD = time.time() - 3600  # an mtime well outside the racy window


def _write(path: Path, text: str, *, when: float | None = OLD) -> None:
    path.write_text(text)
    if when is not None:
        os.utime(path, (when, when))
    # ctime cannot be set back: it is "now"; make it old enough to keep by waiting it out.


def _settled(path: Path, text: str) -> None:
    """Write ``text`` and wait until its ctime is outside the racy window, so it will be kept."""
    _write(path, text)
    time.sleep(file_versions.RACY_NS / 1e9 + 0.02)


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("JANUS_NET_RESOLV_CONF", "JANUS_NET_HOSTS", "LOCALDOMAIN", "RES_OPTIONS"):
        monkeypatch.delenv(name, raising=False)
    file_versions.forget()


def test_unchanged_file_is_not_opened_again(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    _settled(conf, "nameserver 192.0.2.1\n")
    first = ResolverConfig.load(str(conf))
    with fail("open", errno.EACCES, times=1000) as injection:
        again = ResolverConfig.load(str(conf))
    assert injection.failed == 0, "an unchanged resolv.conf was opened again"
    assert again == first


def test_same_size_rewrite_with_mtime_set_back_is_seen(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    _settled(conf, "nameserver 192.0.2.1\n")
    assert str(ResolverConfig.load(str(conf)).nameservers[0]) == "192.0.2.1:53"
    ino = conf.stat().st_ino
    _write(conf, "nameserver 192.0.2.2\n")  # same size, same inode, same mtime: only ctime moved
    assert conf.stat().st_ino == ino and conf.stat().st_mtime == OLD
    assert str(ResolverConfig.load(str(conf)).nameservers[0]) == "192.0.2.2:53"


def test_replaced_by_rename_is_seen(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    _settled(conf, "nameserver 192.0.2.1\n")
    ResolverConfig.load(str(conf))
    new = tmp_path / "new"
    _settled(new, "nameserver 192.0.2.3\n")
    new.rename(conf)
    assert str(ResolverConfig.load(str(conf)).nameservers[0]) == "192.0.2.3:53"


def test_a_file_changed_just_now_is_read_at_every_load(tmp_path: Path) -> None:
    # Written now, rewritten within the same clock tick with the same size and times: the
    # version could not tell the two apart, so the first read must not have been kept.
    conf = tmp_path / "resolv.conf"
    written = time.time_ns()
    conf.write_text("nameserver 192.0.2.1\n")
    ResolverConfig.load(str(conf))
    if time.time_ns() - written < file_versions.RACY_NS // 2:  # (a stalled machine proves nothing here)
        assert str(conf) not in file_versions._kept, "a file changed just now was kept"
    st = conf.stat()
    conf.write_text("nameserver 192.0.2.4\n")
    os.utime(conf, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert str(ResolverConfig.load(str(conf)).nameservers[0]) == "192.0.2.4:53"


def test_the_environment_is_read_at_every_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "resolv.conf"
    _settled(conf, "nameserver 192.0.2.1\nsearch a.example\noptions ndots:2\n")
    assert ResolverConfig.load(str(conf)).search == ("a.example",)
    monkeypatch.setenv("LOCALDOMAIN", "b.example")
    monkeypatch.setenv("RES_OPTIONS", "ndots:4")
    config = ResolverConfig.load(str(conf))
    assert config.search == ("b.example",) and config.ndots == 4
    monkeypatch.delenv("LOCALDOMAIN")
    monkeypatch.delenv("RES_OPTIONS")
    config = ResolverConfig.load(str(conf))
    assert config.search == ("a.example",) and config.ndots == 2


def test_a_file_that_goes_away_is_not_answered_from_memory(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    _settled(conf, "nameserver 192.0.2.1\n")
    ResolverConfig.load(str(conf))
    conf.unlink()
    with pytest.raises(jn.SocketError.FileNotFound):
        ResolverConfig.load(str(conf))
    conf.mkfifo() if hasattr(conf, "mkfifo") else os.mkfifo(conf)
    with pytest.raises(jn.SocketError.SystemResources):
        ResolverConfig.load(str(conf))


def test_hosts_file_edits_are_seen_by_the_next_resolve(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    _settled(hosts, "192.0.2.10 box.example\n")
    config = jn.ResolverConfig().replace(hosts=str(hosts), nameservers=("127.0.0.1:9",), attempts=1, timeout=1)
    assert [str(a) for a in jn.resolve("box.example", config=config).addresses] == ["192.0.2.10:0"]
    with fail("open", errno.EACCES, times=1000) as injection:
        assert jn.resolve("box.example", config=config).source == "files"
    assert injection.failed == 0, "an unchanged hosts file was opened again"
    _write(hosts, "192.0.2.11 box.example\n")  # same size, mtime set back
    assert [str(a) for a in jn.resolve("box.example", config=config).addresses] == ["192.0.2.11:0"]
    hosts.unlink()
    assert hosts_file.read(str(hosts)) == b""


def test_threads_loading_while_the_file_changes_see_only_real_versions(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    texts = [f"nameserver 192.0.2.{i}\n" for i in range(1, 10)]
    conf.write_text(texts[0])
    seen: set[str] = set()
    errors: list[BaseException] = []
    stop = threading.Event()

    def loader() -> None:
        try:
            while not stop.is_set():
                seen.add(str(ResolverConfig.load(str(conf)).nameservers[0]))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=loader) for _ in range(3)]
    for thread in threads:
        thread.start()
    for text in texts[1:]:
        tmp = tmp_path / "tmp"
        tmp.write_text(text)
        tmp.rename(conf)  # atomic: a reader sees the old or the new file, whole
        time.sleep(0.01)
    time.sleep(0.05)
    stop.set()
    for thread in threads:
        thread.join()
    assert not errors
    assert seen <= {t.split()[1] + ":53" for t in texts}
    assert str(ResolverConfig.load(str(conf)).nameservers[0]) == "192.0.2.9:53"


def test_a_large_file_is_read_at_every_lookup_not_held(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    big = "".join(f"192.0.2.{i % 250 + 1} filler{i}.example\n" for i in range(60000))
    assert len(big) > file_versions.MAX_KEPT_BYTES
    _settled(hosts, big + "192.0.2.77 last.example\n")
    assert hosts_file.read(str(hosts)).endswith(b"last.example\n")
    with fail("open", errno.EACCES, times=1000) as injection:
        assert hosts_file.read(str(hosts)) == b""  # read again: the open fails (and a failed read has no names)
    assert injection.failed == 1


# A file system whose time stamps are whole seconds (ext4 with 128-byte inodes; FAT, HFS+ and
# some NFS servers are as coarse): two writes within one second leave the same version, however
# long after the first the file was read. The child mounts one in a mount namespace of its own
# (the mount goes with it), writes, reads 150 ms later, rewrites in place, and reads again.
_COARSE_CHILD = r"""
import os, sys, time
from janus_net._profiles.resolver_config import ResolverConfig
conf = sys.argv[1] + "/resolv.conf"
with open(conf, "w") as f:
    f.write("nameserver 192.0.2.9\n")
ResolverConfig.load(conf, "/dev/null")  # whatever loads lazily, loaded now: not between the writes
while time.time() % 1 > 0.1:  # the two writes must fall within one second of the file system's clock
    time.sleep(0.005)
with open(conf, "w") as f:
    f.write("nameserver 192.0.2.1\n")
time.sleep(0.15)  # beyond the racy window of a file system with fine time stamps
first = ResolverConfig.load(conf, "/dev/null")
before = os.stat(conf)
with open(conf, "r+") as f:  # in place: same inode, same size
    f.write("nameserver 192.0.2.2\n")
after = os.stat(conf)
same = (before.st_ctime_ns, before.st_mtime_ns) == (after.st_ctime_ns, after.st_mtime_ns)
print(same, first.nameservers[0], ResolverConfig.load(conf, "/dev/null").nameservers[0])
"""


def test_a_rewrite_within_a_coarse_file_systems_second_is_seen(tmp_path: Path) -> None:
    if os.geteuid() != 0 or not Path("/dev/loop-control").exists():
        pytest.skip("needs root and loop devices to mount a file system with coarse time stamps")
    image, mount = tmp_path / "coarse.img", tmp_path / "mnt"
    mount.mkdir()
    with open(image, "wb") as f:
        f.truncate(8 * 1024 * 1024)
    try:
        subprocess.run(["mkfs.ext4", "-q", "-F", "-I", "128", str(image)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"mkfs.ext4 cannot make the image: {exc}")
    script = 'mount -o loop "$1" "$2" && exec "$3" -c "$4" "$2"'
    # The premise -- both writes within one second of the file system's clock -- is the
    # machine's to grant: a loaded machine may straddle a second; then the child runs again.
    for _ in range(5):
        done = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", image, mount, sys.executable,
             _COARSE_CHILD],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if done.returncode != 0 and "mount" in done.stderr:
            pytest.skip(f"cannot mount a loop device here: {done.stderr.strip()}")
        assert done.returncode == 0, done.stderr
        same, first, second = done.stdout.split()
        if same == "True":
            break
    assert same == "True", "the premise failed five times: the two writes got different time stamps"
    assert first == "192.0.2.1:53"
    assert second == "192.0.2.2:53", "the content read before the rewrite was served again"
