"""The OBS client against the OBS emulator, and the emulator against an official signer."""

from __future__ import annotations

import hashlib
import os
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
import requests

from drs_report.emulator.obs import ObsEmulator, ObsFaults
from drs_report.obs import signature
from drs_report.obs.client import ObsClient, ObsError, parse_url
from drs_report.secrets import Credentials
from tests.fixtures.emulator import CANARY_AK, CANARY_SK, CANARY_TOKEN, canary_credentials
from tests.fixtures.obs import BUCKET


def client_for(obs: ObsEmulator, credentials: Credentials | None = None,
               **kwargs: Any) -> ObsClient:
    kwargs.setdefault("backoff_base", 0.01)
    return ObsClient(obs.url, credentials or canary_credentials(), **kwargs)


def test_put_get_head_delete_round_trip(obs: ObsEmulator, tmp_path: Path) -> None:
    client = client_for(obs)
    source = tmp_path / "history.db"
    source.write_bytes(os.urandom(3 << 20))
    put = client.put_file(BUCKET, "drs-report/history.db", source)
    expected = f'"{hashlib.md5(source.read_bytes()).hexdigest()}"'
    assert put.etag == expected  # the ETag of a single PUT is the body's MD5
    head = client.head(BUCKET, "drs-report/history.db")
    assert head is not None and head.etag == expected and head.size == 3 << 20
    target = tmp_path / "copy.db"
    got = client.get_to_file(BUCKET, "drs-report/history.db", target)
    assert got is not None and got.etag == expected
    assert target.read_bytes() == source.read_bytes()
    client.delete(BUCKET, "drs-report/history.db")
    assert client.head(BUCKET, "drs-report/history.db") is None
    assert client.get_to_file(BUCKET, "drs-report/history.db", tmp_path / "gone") is None
    assert not (tmp_path / "gone").exists()


def test_the_signature_matches_the_official_sdk() -> None:
    """Our string-to-sign and signature against huaweicloudsdkobs's own signer."""
    from huaweicloudsdkobs.v1.obs_signer import OBSSigner

    class Creds:
        ak, sk, security_token = CANARY_AK, CANARY_SK, CANARY_TOKEN

    cases = [
        ("GET", "drs-report", "drs-report/history.db", {"Date": formatdate(usegmt=True)}),
        ("PUT", "my.bucket-1", "a/b/c.lease",
         {"Date": formatdate(usegmt=True), "Content-Type": "application/json",
          "Content-MD5": "1B2M2Y8AsgTpgAmY7PhCfg==", "x-obs-meta-owner": " run 7 "}),
        ("DELETE", "b1", "k", {"x-obs-date": formatdate(usegmt=True), "Date": "ignored"}),
    ]
    for method, bucket, key, headers in cases:
        theirs_headers = dict(headers)
        theirs = OBSSigner.doAuth(Creds(), method, bucket, key, [], theirs_headers)
        ours_headers = dict(headers, **{signature.SECURITY_TOKEN: CANARY_TOKEN})
        text = signature.string_to_sign(method, f"/{bucket}/{key}", ours_headers)
        assert text == theirs["CanonicalString"], method
        assert signature.authorization(CANARY_AK, CANARY_SK, text) == theirs["Authorization"]


def test_the_emulator_accepts_what_the_official_signer_signs(obs: ObsEmulator) -> None:
    from huaweicloudsdkobs.v1.obs_signer import OBSSigner

    class Creds:
        ak, sk, security_token = CANARY_AK, CANARY_SK, CANARY_TOKEN

    obs.put_object(BUCKET, "k/one", b"hello")
    headers = {"Date": formatdate(usegmt=True)}
    headers["Authorization"] = OBSSigner.doAuth(Creds(), "GET", BUCKET, "k/one", [],
                                                headers)["Authorization"]
    answer = requests.get(f"{obs.url}/{BUCKET}/k/one", headers=headers, timeout=5)
    assert answer.status_code == 200 and answer.content == b"hello"


def test_wrong_keys_token_clock_and_permissions_are_403_with_the_fix(
        obs: ObsEmulator, tmp_path: Path) -> None:
    wrong_sk = client_for(obs, Credentials.of(CANARY_AK, "not-the-secret-key", CANARY_TOKEN))
    with pytest.raises(ObsError) as caught:
        wrong_sk.head(BUCKET, "x")
    assert caught.value.status == 403
    with pytest.raises(ObsError) as caught:
        wrong_sk.get_bytes(BUCKET, "x")
    assert caught.value.code == "SignatureDoesNotMatch"
    assert "check the AK/SK" in str(caught.value)
    no_token = client_for(obs, Credentials.of(CANARY_AK, CANARY_SK))
    with pytest.raises(ObsError) as caught:
        no_token.get_bytes(BUCKET, "x")
    assert caught.value.code == "AccessDenied"
    obs.deny("PutObject")
    (tmp_path / "f").write_bytes(b"x")
    with pytest.raises(ObsError) as caught:
        client_for(obs).put_file(BUCKET, "drs-report/history.db", tmp_path / "f")
    message = str(caught.value)
    assert "obs://drs-report/drs-report/history.db" in message
    assert "obs:object:PutObject on bucket drs-report" in message
    for secret in (CANARY_SK, CANARY_TOKEN):
        assert secret not in message
    with pytest.raises(ObsError) as caught:
        client_for(obs).get_bytes("no-such-bucket", "k")
    assert "bucket no-such-bucket does not exist" in str(caught.value)


def test_a_skewed_clock_is_refused(obs: ObsEmulator) -> None:
    headers = {"Date": formatdate(0, usegmt=True)}
    text = signature.string_to_sign("GET", f"/{BUCKET}/k", headers)
    headers["Authorization"] = signature.authorization(CANARY_AK, CANARY_SK, text)
    answer = requests.get(f"{obs.url}/{BUCKET}/k", headers=headers, timeout=5)
    assert answer.status_code == 403 and b"RequestTimeTooSkewed" in answer.content


def test_503_and_a_reset_mid_body_are_retried(obs: ObsEmulator, tmp_path: Path) -> None:
    data = os.urandom(2 << 20)
    obs.put_object(BUCKET, "h.db", data)
    obs.set_faults(ObsFaults(unavailable_next=2, reset_mid_body_next=1))
    client = client_for(obs)
    got = client.get_to_file(BUCKET, "h.db", tmp_path / "h.db")
    assert got is not None and (tmp_path / "h.db").read_bytes() == data
    statuses = [r.status for r in obs.requests("GET")]
    assert statuses == [503, 503, 0, 200]  # 0: the reset halfway through the body
    obs.set_faults(ObsFaults(unavailable_next=10))
    with pytest.raises(ObsError) as caught:
        client_for(obs, max_retries=2).head(BUCKET, "h.db")
    assert "failed after 3 tries: HTTP 503 ServiceUnavailable" in str(caught.value)


def test_a_download_cut_short_for_good_leaves_the_old_file(obs: ObsEmulator,
                                                          tmp_path: Path) -> None:
    obs.put_object(BUCKET, "h.db", os.urandom(1 << 20))
    target = tmp_path / "h.db"
    target.write_bytes(b"the previous copy")
    obs.set_faults(ObsFaults(reset_mid_body_rate=1.0))
    with pytest.raises(ObsError):
        client_for(obs, max_retries=1).get_to_file(BUCKET, "h.db", target)
    assert target.read_bytes() == b"the previous copy"
    assert list(tmp_path.iterdir()) == [target]  # no .part left behind


def test_a_gzip_body_is_inflated_as_it_arrives_and_a_cut_one_refused(
        obs: ObsEmulator, tmp_path: Path) -> None:
    import gzip

    data = os.urandom(1 << 20) + b"SQLite pages repeat themselves " * 100_000
    packed = gzip.compress(data, 1)
    obs.put_object(BUCKET, "h.db", packed)
    client = client_for(obs)
    got = client.get_to_file(BUCKET, "h.db", tmp_path / "h.db", inflate=True)
    assert got is not None and got.size == len(packed)  # what came over the wire
    assert (tmp_path / "h.db").read_bytes() == data
    plain = client.get_to_file(BUCKET, "h.db", tmp_path / "as-is.db")  # inflate off
    assert plain is not None and (tmp_path / "as-is.db").read_bytes() == packed
    obs.put_object(BUCKET, "old.db", b"SQLite format 3\x00 written uncompressed")
    old = client.get_to_file(BUCKET, "old.db", tmp_path / "old.db", inflate=True)
    assert old is not None
    assert (tmp_path / "old.db").read_bytes() == b"SQLite format 3\x00 written uncompressed"
    obs.put_object(BUCKET, "cut.db", packed[:len(packed) // 2])  # a stream that just ends
    target = tmp_path / "cut.db"
    with pytest.raises(ObsError) as caught:
        client_for(obs, max_retries=1).get_to_file(BUCKET, "cut.db", target, inflate=True)
    assert "gzip body ended early" in str(caught.value)
    assert not target.exists() and not (tmp_path / "cut.db.part").exists()


def test_get_honours_if_none_match_and_if_match(obs: ObsEmulator, tmp_path: Path) -> None:
    etag = obs.put_object(BUCKET, "h.db", b"version one")
    client = client_for(obs)
    target = tmp_path / "h.db"
    target.write_bytes(b"local copy")
    same = client.get_to_file(BUCKET, "h.db", target, if_none_match=etag)
    assert same is not None and same.not_modified and same.etag == etag
    assert target.read_bytes() == b"local copy"
    obs.put_object(BUCKET, "h.db", b"version two")
    newer = client.get_to_file(BUCKET, "h.db", target, if_none_match=etag)
    assert newer is not None and not newer.not_modified
    assert target.read_bytes() == b"version two"
    headers = {"Date": formatdate(usegmt=True), "If-Match": etag}
    text = signature.string_to_sign("GET", f"/{BUCKET}/h.db", headers)
    headers["Authorization"] = signature.authorization(CANARY_AK, CANARY_SK, text)
    headers[signature.SECURITY_TOKEN] = CANARY_TOKEN
    text = signature.string_to_sign("GET", f"/{BUCKET}/h.db", headers)
    headers["Authorization"] = signature.authorization(CANARY_AK, CANARY_SK, text)
    answer = requests.get(f"{obs.url}/{BUCKET}/h.db", headers=headers, timeout=5)
    assert answer.status_code == 412 and b"PreconditionFailed" in answer.content


def test_put_ignores_conditional_headers_as_obs_does(obs: ObsEmulator) -> None:
    obs.put_object(BUCKET, "lease", b"held by another run")
    body = b"mine"
    headers = {"Date": formatdate(usegmt=True), "If-None-Match": "*",
               "If-Match": '"0123456789abcdef0123456789abcdef"',
               signature.SECURITY_TOKEN: CANARY_TOKEN}
    text = signature.string_to_sign("PUT", f"/{BUCKET}/lease", headers)
    headers["Authorization"] = signature.authorization(CANARY_AK, CANARY_SK, text)
    answer = requests.put(f"{obs.url}/{BUCKET}/lease", data=body, headers=headers, timeout=5)
    assert answer.status_code == 200
    stored = obs.object(BUCKET, "lease")
    assert stored is not None and stored.data == b"mine"  # the latest PUT won


def test_downloads_and_uploads_stream_through_disk(obs: ObsEmulator, tmp_path: Path) -> None:
    """The client in a process of its own, so only its allocations are counted."""
    import json
    import subprocess
    import sys

    size = 24 << 20
    source = tmp_path / "big.db"
    with source.open("wb") as f:
        for _ in range(size >> 20):
            f.write(os.urandom(1 << 20))
    script = f"""
import json, sys, tracemalloc
from pathlib import Path
sys.path.insert(0, {str(Path(__file__).resolve().parent.parent / "function")!r})
from drs_report.obs.client import ObsClient
from drs_report.secrets import Credentials
from drs_report.store.sync import pack_file  # imported before anything is counted
client = ObsClient({obs.url!r}, Credentials.of({CANARY_AK!r}, {CANARY_SK!r}, {CANARY_TOKEN!r}))
tracemalloc.start()
client.put_file("{BUCKET}", "big.db", Path({str(source)!r}))
put_peak = tracemalloc.get_traced_memory()[1]
tracemalloc.reset_peak()
client.get_to_file("{BUCKET}", "big.db", Path({str(tmp_path / "back.db")!r}))
get_peak = tracemalloc.get_traced_memory()[1]
tracemalloc.reset_peak()
pack_file(Path({str(source)!r}), Path({str(tmp_path / "big.db.gz")!r}))
client.put_file("{BUCKET}", "big.db.gz", Path({str(tmp_path / "big.db.gz")!r}))
client.get_to_file("{BUCKET}", "big.db.gz", Path({str(tmp_path / "inflated.db")!r}),
                   inflate=True)
print(json.dumps([put_peak, get_peak, tracemalloc.get_traced_memory()[1]]))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    put_peak, get_peak, gzip_peak = json.loads(proc.stdout)
    assert (tmp_path / "back.db").read_bytes() == source.read_bytes()
    assert (tmp_path / "inflated.db").read_bytes() == source.read_bytes()
    # Chunks of 1 MiB in flight, never the 24 MiB file, compressed or not.
    assert put_peak < 6 << 20, put_peak
    assert get_peak < 6 << 20, get_peak
    assert gzip_peak < 8 << 20, gzip_peak


def test_tls_is_verified_and_a_ca_bundle_is_respected(tls_files: tuple[Any, str],
                                                      tmp_path: Path) -> None:
    import ssl

    cert, ca_file = tls_files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    with ObsEmulator(ak=CANARY_AK, sk=CANARY_SK, buckets=[BUCKET],
                     ssl_context=context) as secure:
        secure.put_object(BUCKET, "k", b"over TLS")
        creds = canary_credentials(with_token=False)
        with pytest.raises(ObsError) as caught:
            ObsClient(secure.url, creds, max_retries=0).get_bytes(BUCKET, "k")
        assert "TLS failed" in str(caught.value) and "drs.ca_bundle" in str(caught.value)
        got = ObsClient(secure.url, creds, verify=ca_file).get_bytes(BUCKET, "k")
        assert got is not None and got[0] == b"over TLS"


def test_addressing_is_virtual_hosted_for_real_endpoints() -> None:
    creds = canary_credentials()
    real = ObsClient("https://obs.cn-north-4.myhuaweicloud.com", creds)
    assert real.url_for("b", "drs report/h.db") == \
        "https://b.obs.cn-north-4.myhuaweicloud.com/drs%20report/h.db"
    local = ObsClient("http://127.0.0.1:9000", creds)
    assert local.url_for("b", "k/h.db") == "http://127.0.0.1:9000/b/k/h.db"
    assert parse_url("obs://my-bucket/drs-report/history.db") == \
        ("my-bucket", "drs-report/history.db")
    for bad in ("obs://B/k", "s3://b/k", "obs://bucket/", "obs://bucket"):
        with pytest.raises(ValueError):
            parse_url(bad)
