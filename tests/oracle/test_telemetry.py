"""oracle.telemetry: the capture parsers (DCGM exporter, nvidia-smi CSV, NVML), the agent
registry, and signed batches. Store, methodology v2 and agent: test_telemetry_*.py."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from pydantic import ValidationError

from gpushares.fleet import GPURow
from oracle import attest
from oracle.telemetry import (
    GPU_UTIL,
    GR_ENGINE_ACTIVE,
    AgentRegistry,
    BatchSignatureError,
    RegistryError,
    Sample,
    SignedBatch,
    TelemetryBatch,
    TelemetryParseError,
    TelemetryUnavailable,
    batch_hash,
    load_dcgm,
    load_nvsmi,
    parse_dcgm,
    parse_nvsmi,
    percent_str,
    read_nvml,
    recover_agent,
    serial_hash,
    sign_batch,
)
from oracle.telemetry.nvml import UNAVAILABLE_HINT
from tests.oracle import _telemetry as t

GR_1 = ["97.3412", "91.2877", "96.802", "54.1306", "95.8734", "0", "80.3115", "98.125"]
GR_2 = ["96.9551", "93.0004", "97.1186", "8.7342", "96.1009", "0", "82.664", "97.9903"]
UTIL_1 = ["100", "97", "100", "64", "100", "0", "88", "100"]
NVSMI_VALUES = [
    [100, 100, 100, 99, 100, 100],
    [97, 98, 96, 99, 99, 99],
    [100] * 6,
    [64, 58, 41, 33, 20, 12],
    [100] * 6,
    [0] * 6,
    [88, 90, 87, 89, 92, 91],
    [100] * 6,
]


def by_uuid(samples: list[Sample]) -> dict[str, Sample]:
    return {s.uuid: s for s in samples}


def dcgm_text() -> str:
    return t.DCGM_1.read_text()


def nvsmi_text() -> str:
    return t.NVSMI.read_text()


# ------------------------------------------------------------------ percent strings


@pytest.mark.parametrize(("value", "expected"), [
    ("87", "87"), ("87.0", "87"), ("100.000", "100"), ("0.00", "0"), ("-0", "0"),
    ("98.76543", "98.7654"), ("98.76545", "98.7654"), ("98.76555", "98.7656"),
    (7, "7"), ("1E+2", "100"),
])
def test_percent_str_canonical(value: Any, expected: str) -> None:
    assert percent_str(value) == expected


@pytest.mark.parametrize("value", ["100.001", "-1", "nan", "inf", "abc", ""])
def test_percent_str_refuses(value: str) -> None:
    with pytest.raises(ValueError):
        percent_str(value)


def test_sample_refuses_non_canonical_spellings() -> None:
    uuid = t.uuids()[0]
    with pytest.raises(ValidationError, match="canonical form"):
        t.sample(uuid, t.T0, "87.0")
    with pytest.raises(ValidationError, match="lower case"):
        t.sample(uuid.upper().replace("GPU-", "GPU-"), t.T0, "87")
    with pytest.raises(ValidationError):
        t.sample(uuid, t.T0, "101")
    with pytest.raises(ValidationError):
        t.sample("MIG-8f1c5abb-2af3-12d4-abb3-88d0a7846538", t.T0, "1")
    with pytest.raises(ValidationError):
        Sample(uuid=uuid, serial=None, time=t.T0 * 1000 * 1000, percent="1",
               metric="DCGM_FI_DEV_GPU_UTIL")


# ------------------------------------------------------------------ DCGM exporter


def test_dcgm_shipped_scrapes() -> None:
    first = load_dcgm(t.DCGM_1, scraped_at=t.T0)
    second = load_dcgm(t.DCGM_2, scraped_at=t.T0 + 300)
    assert len(first) == len(second) == 8
    assert first.skipped == [] and second.skipped == []
    for scrape, values, when in ((first, GR_1, t.T0), (second, GR_2, t.T0 + 300)):
        got = by_uuid(scrape)
        for uuid, percent in zip(t.uuids(), values, strict=True):
            assert got[uuid].percent == percent
            assert got[uuid].time == when
            assert got[uuid].metric == GR_ENGINE_ACTIVE
            assert got[uuid].serial is None
    assert first == sorted(first, key=lambda s: (s.time, s.uuid))


def test_dcgm_falls_back_to_gpu_util() -> None:
    text = "\n".join(line for line in dcgm_text().splitlines()
                     if not line.startswith(GR_ENGINE_ACTIVE))
    got = by_uuid(parse_dcgm(text, scraped_at=t.T0))
    assert [got[u].percent for u in t.uuids()] == UTIL_1
    assert {s.metric for s in got.values()} == {GPU_UTIL}


def test_dcgm_malformed_series_is_skipped_and_counted() -> None:
    lines = dcgm_text().splitlines()
    gr = [i for i, line in enumerate(lines) if line.startswith(GR_ENGINE_ACTIVE + "{")]
    util = [i for i, line in enumerate(lines) if line.startswith(GPU_UTIL + "{")]
    lines[gr[3]] = lines[gr[3]].rsplit(" ", 1)[0] + " 1.7"         # ratio out of range
    lines[gr[5]] = lines[gr[5]].replace('UUID="', 'UUID="x')       # bad UUID
    lines[util[5]] = lines[util[5]].replace("{gpu=", "{gpu")       # broken labels
    text = "\n".join(lines)
    result = parse_dcgm(text, scraped_at=t.T0, source="scrape.prom")
    got = by_uuid(result)
    uuids = t.uuids()
    assert len(result) == 7 and uuids[5] not in got
    assert got[uuids[3]].metric == GPU_UTIL and got[uuids[3]].percent == "64"
    assert got[uuids[0]].metric == GR_ENGINE_ACTIVE
    assert sorted(s.line for s in result.skipped) == sorted(
        [gr[3] + 1, gr[5] + 1, util[5] + 1])
    reasons = {s.line: s.reason for s in result.skipped}
    assert "outside 0..1" in reasons[gr[3] + 1] and "UUID" in reasons[gr[5] + 1]
    assert "not a Prometheus sample line" in reasons[util[5] + 1]
    with pytest.raises(TelemetryParseError, match=rf"^scrape.prom:{util[5] + 1}: "):
        parse_dcgm(text, scraped_at=t.T0, source="scrape.prom", strict=True)


def test_dcgm_metric_timestamps_serial_label_and_mig() -> None:
    uuid = t.uuids()[0]
    text = "\n".join([
        "# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).",
        "# TYPE DCGM_FI_DEV_GPU_UTIL gauge",
        f'DCGM_FI_DEV_GPU_UTIL{{gpu="0",UUID="{uuid}",serial="1654923041107"}} 87 '
        f"{t.T0}999",
        f'DCGM_FI_PROF_GR_ENGINE_ACTIVE{{gpu="1",UUID="{t.uuids()[1]}",GPU_I_ID="3"}} 0.5',
        f'DCGM_FI_PROF_GR_ENGINE_ACTIVE{{gpu="2",UUID="{t.uuids()[2]}"}} NaN',
    ])
    result = parse_dcgm(text)  # no scraped_at: the series' own timestamp
    assert result == [t.sample(uuid, t.T0, "87", serial="1654923041107")]
    assert len(result.skipped) == 2
    assert "MIG" in result.skipped[0].reason and "finite" in result.skipped[1].reason


def test_dcgm_needs_a_time() -> None:
    with pytest.raises(TelemetryParseError, match="pass scraped_at"):
        parse_dcgm(dcgm_text())


def test_dcgm_duplicate_series() -> None:
    uuid = t.uuids()[0]
    line = f'DCGM_FI_DEV_GPU_UTIL{{gpu="0",UUID="{uuid}"}} 87'
    assert len(parse_dcgm(f"{line}\n{line}\n", scraped_at=t.T0)) == 1
    other = f'DCGM_FI_DEV_GPU_UTIL{{gpu="0",UUID="{uuid}",pod="x"}} 12'
    with pytest.raises(TelemetryParseError, match="appears twice"):
        parse_dcgm(f"{line}\n{other}\n", scraped_at=t.T0)


@pytest.mark.parametrize("text", ["", "hello world\n", "# HELP x y\nup 1\n",
                                  "DCGM_FI_DEV_SM_CLOCK{gpu=\"0\"} 1980\n"])
def test_dcgm_no_usable_sample(text: str) -> None:
    with pytest.raises(TelemetryParseError, match="no usable utilisation sample"):
        parse_dcgm(text, scraped_at=t.T0)


def test_dcgm_missing_file(tmp_path: Any) -> None:
    with pytest.raises(TelemetryParseError, match="cannot read"):
        load_dcgm(tmp_path / "nope.prom", scraped_at=t.T0)


# ------------------------------------------------------------------ nvidia-smi


def expected_nvsmi() -> list[Sample]:
    out = [t.sample(u, t.T0 + 60 * minute, str(NVSMI_VALUES[i][minute]), serial=s,
                    metric="nvidia-smi:utilization.gpu")
           for i, (u, s) in enumerate(t.inventory()) for minute in range(6)]
    return sorted(out, key=lambda s: (s.time, s.uuid))


def test_nvsmi_shipped_capture() -> None:
    result = load_nvsmi(t.NVSMI)
    assert len(result) == 48 and result.skipped == []
    assert result == expected_nvsmi()


def nounits(text: str) -> str:
    return text.replace("utilization.gpu [%]", "utilization.gpu").replace(" %\n", "\n")


def noheader(text: str) -> str:
    return text.split("\n", 1)[1]


@pytest.mark.parametrize("variant", [nounits, noheader, lambda x: noheader(nounits(x))],
                         ids=["nounits", "noheader", "noheader,nounits"])
def test_nvsmi_format_variants(variant: Any) -> None:
    assert parse_nvsmi(variant(nvsmi_text())) == expected_nvsmi()


def test_nvsmi_repeated_captures_and_reordered_columns() -> None:
    uuid, serial = t.inventory()[0]
    text = (nvsmi_text()
            + "uuid, utilization.gpu [%], timestamp, memory.used [MiB]\n"
            + f"{uuid}, 42 %, 2026/11/21 10:06:00.101, 40000 MiB\n")
    result = parse_nvsmi(text)
    assert len(result) == 49
    assert result[-1] == t.sample(uuid, t.T0 + 360, "42", metric="nvidia-smi:utilization.gpu")


def test_nvsmi_time_zone() -> None:
    berlin = parse_nvsmi(nvsmi_text(), tz="Europe/Berlin")  # CET, UTC+1 in November
    assert [s.time for s in berlin] == [s.time - 3600 for s in expected_nvsmi()]
    with pytest.raises(TelemetryParseError, match="unknown time zone"):
        parse_nvsmi(nvsmi_text(), tz="Mars/Olympus")


def test_nvsmi_malformed_rows_are_skipped_and_counted() -> None:
    lines = nvsmi_text().splitlines()
    lines[1] = lines[1].replace("100 %", "[N/A]")                     # MIG / unsupported
    lines[2] = lines[2].replace("2026/11/21", "21.11.2026")           # bad time
    lines[3] = lines[3].rsplit(",", 1)[0]                             # a field short
    lines[4] = lines[4].replace("1654923041130", "[N/A]")             # no serial: kept
    text = "\n".join(lines) + "\n"
    result = parse_nvsmi(text, source="cap.csv")
    assert len(result) == 45
    assert [s.line for s in result.skipped] == [2, 3, 4]
    assert "[N/A]" in result.skipped[0].reason
    assert by_uuid([s for s in result if s.time == t.T0])[t.uuids()[3]].serial is None
    with pytest.raises(TelemetryParseError, match=r"^cap.csv:2: utilization.gpu"):
        parse_nvsmi(text, source="cap.csv", strict=True)


def test_nvsmi_refuses_a_header_without_required_columns() -> None:
    with pytest.raises(TelemetryParseError, match=r"<nvidia-smi csv>:1: .*lack uuid"):
        parse_nvsmi("timestamp, index, name, utilization.gpu [%]\n"
                    "2026/11/21 10:00:00.104, 0, NVIDIA H100 80GB HBM3, 100 %\n")


def test_nvsmi_duplicate_second_and_empty() -> None:
    row = nvsmi_text().splitlines()[1]
    result = parse_nvsmi(row + "\n" + row.replace(".104", ".904") + "\n")
    assert len(result) == 1 and "second reading" in result.skipped[0].reason
    with pytest.raises(TelemetryParseError, match="no usable"):
        parse_nvsmi("")


# ------------------------------------------------------------------ NVML


def test_nvml_reads_real_gpus() -> None:
    try:
        result = read_nvml(now=t.T0)
    except TelemetryUnavailable as exc:
        pytest.skip(str(exc))
    assert result and all(s.metric == "nvml:utilization.gpu" for s in result)


def test_nvml_unavailable_here_says_what_to_do() -> None:
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        pass
    else:
        pynvml.nvmlShutdown()
        pytest.skip("this machine has an NVIDIA driver: NVML is available")
    with pytest.raises(TelemetryUnavailable, match="use the DCGM exporter or nvidia-smi"):
        read_nvml()
    assert UNAVAILABLE_HINT.startswith("no NVIDIA driver/GPU on this machine")


class FakeNvml:
    """A stand-in for pynvml: device 0 answers, device 1 has no serial, device 2 fails."""

    class NVMLError(Exception):
        pass

    def __init__(self, count: int = 3, fail_init: bool = False) -> None:
        self.count = count
        self.fail_init = fail_init
        self.calls: list[str] = []

    def nvmlInit(self) -> None:  # noqa: N802 - pynvml's names
        self.calls.append("init")
        if self.fail_init:
            raise self.NVMLError("Driver Not Loaded")

    def nvmlShutdown(self) -> None:  # noqa: N802
        self.calls.append("shutdown")

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        return self.count

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:  # noqa: N802
        return i

    def nvmlDeviceGetUUID(self, h: int) -> bytes:  # noqa: N802
        return t.uuids()[h].encode()

    def nvmlDeviceGetSerial(self, h: int) -> str:  # noqa: N802
        if h == 1:
            raise self.NVMLError("Not Supported")
        return t.inventory()[h][1]

    def nvmlDeviceGetUtilizationRates(self, h: int) -> SimpleNamespace:  # noqa: N802
        if h == 2:
            raise self.NVMLError("GPU is lost")
        return SimpleNamespace(gpu=[93, 7][h], memory=40)


def test_nvml_reading_with_a_stand_in() -> None:
    fake = FakeNvml()
    result = read_nvml(now=t.T0, nvml=fake)
    (u0, s0), (u1, _) = t.inventory()[:2]
    assert sorted(result, key=lambda s: s.uuid) == sorted(
        [t.sample(u0, t.T0, "93", serial=s0, metric="nvml:utilization.gpu"),
         t.sample(u1, t.T0, "7", metric="nvml:utilization.gpu")], key=lambda s: s.uuid)
    assert [(s.line, "GPU is lost" in s.reason) for s in result.skipped] == [(2, True)]
    assert fake.calls == ["init", "shutdown"]


def test_nvml_shuts_down_even_without_gpus() -> None:
    fake = FakeNvml(count=0)
    with pytest.raises(TelemetryUnavailable, match="sees no GPU"):
        read_nvml(nvml=fake)
    assert fake.calls == ["init", "shutdown"]
    failing = FakeNvml(fail_init=True)
    with pytest.raises(TelemetryUnavailable, match="Driver Not Loaded"):
        read_nvml(nvml=failing)
    assert failing.calls == ["init"]


# ------------------------------------------------------------------ registry


def test_registry_example_matches_the_inventory_and_fleet_hashing() -> None:
    reg = AgentRegistry.load(t.REGISTRY_TOML)
    gpus = reg.registered_gpus(t.SPV)
    assert {(g.uuid, g.serial) for g in gpus} == set(t.inventory())
    assert [g.serial_hash for g in gpus] == sorted(g.serial_hash for g in gpus)
    for g in gpus:
        fleet_hash = GPURow.serial_hash.fget(SimpleNamespace(serial=g.serial))  # type: ignore
        assert g.serial_hash == "0x" + fleet_hash.hex() == serial_hash(g.serial)
        assert g.agent == t.address(t.agent_key())
    assert reg.registered_gpus(t.SPV2) == []
    assert reg.entry(t.address(t.agent_key()).lower(), t.SPV) is not None


def test_registry_json_camel_case(tmp_path: Any) -> None:
    (u, s) = t.inventory()[0]
    path = tmp_path / "agents.json"
    path.write_text(json.dumps({"agents": [{
        "address": t.address(t.agent_key()), "spvToken": t.SPV,
        "gpus": [{"uuid": u, "serial": s, "serialHash": serial_hash(s)}]}]}))
    reg = AgentRegistry.load(path)
    assert reg.binding(u) is not None and reg.binding(u).serial == s  # type: ignore[union-attr]


@pytest.mark.parametrize(("agents", "match"), [
    ("twice", "registered twice"),
    ("bad_hash", "serialHash of"),
    ("no_serial", "needs its board serial"),
    ("bad_address", "address"),
])
def test_registry_refusals(tmp_path: Any, agents: str, match: str) -> None:
    (u, s), (u2, _) = t.inventory()[:2]
    a, b = t.address(t.agent_key()), t.address(t.agent2_key())
    entries = {
        "twice": [{"address": a, "spvToken": t.SPV, "gpus": [{"uuid": u, "serial": s}]},
                  {"address": b, "spvToken": t.SPV, "gpus": [{"uuid": u, "serial": "x1"}]}],
        "bad_hash": [{"address": a, "spvToken": t.SPV,
                      "gpus": [{"uuid": u, "serial": s, "serialHash": "0x" + "00" * 32}]}],
        "no_serial": [{"address": a, "spvToken": t.SPV,
                       "gpus": [{"uuid": u2, "serial": "[N/A]"}]}],
        "bad_address": [{"address": "0x123", "spvToken": t.SPV,
                         "gpus": [{"uuid": u, "serial": s}]}],
    }[agents]
    path = tmp_path / "agents.json"
    path.write_text(json.dumps({"agents": entries}))
    with pytest.raises(RegistryError, match=match):
        AgentRegistry.load(path)


def test_registry_inventory_errors_name_the_line(tmp_path: Any) -> None:
    (tmp_path / "gpus.csv").write_text("uuid,serial\nGPU-nope,123\n")
    (tmp_path / "r.toml").write_text(
        f'[[agents]]\naddress = "{t.address(t.agent_key())}"\n'
        f'spv_token = "{t.SPV}"\ngpus_csv = "gpus.csv"\n')
    with pytest.raises(RegistryError, match=r"gpus.csv:2: not a GPU UUID"):
        AgentRegistry.load(tmp_path / "r.toml")
    (tmp_path / "r.toml").write_text("agents = [")
    with pytest.raises(RegistryError, match="not valid toml"):
        AgentRegistry.load(tmp_path / "r.toml")


# ------------------------------------------------------------------ batches


def test_sign_and_recover_is_eip191_personal_sign() -> None:
    batch = t.batch(load_dcgm(t.DCGM_1, scraped_at=t.T0))
    signed = sign_batch(batch, t.agent_key())
    assert recover_agent(signed) == batch.agent == t.address(t.agent_key())
    message = encode_defunct(primitive=attest.canonical_json(batch.canonical()))
    assert Account.recover_message(message, signature=signed.signature) == batch.agent
    # the wire form round-trips to the same batch, hash and signer
    again = SignedBatch.model_validate(json.loads(json.dumps(signed.canonical())))
    assert again == signed and batch_hash(again.batch) == batch_hash(batch)
    assert again.canonical()["batch"]["spvToken"] == t.SPV
    assert set(again.canonical()["batch"]) == {"type", "agent", "spvToken", "sequence",
                                                "createdAt", "source", "samples"}


def test_altered_batch_recovers_someone_else() -> None:
    signed = t.signed([t.sample(t.uuids()[0], t.T0, "10")])
    altered = signed.batch.model_copy(update={"samples": [t.sample(t.uuids()[0], t.T0, "90")]})
    assert recover_agent(SignedBatch(batch=altered, signature=signed.signature)) != \
        signed.batch.agent


def test_malformed_signatures_raise() -> None:
    signed = t.signed([t.sample(t.uuids()[0], t.T0, "10")])
    raw = bytearray(bytes.fromhex(signed.signature[2:]))
    bad_v = raw.copy()
    bad_v[64] = 29
    high_s = raw.copy()
    s = int.from_bytes(raw[32:64], "big")
    high_s[32:64] = (attest.SECP256K1_HALF_N * 2 + 1 - s).to_bytes(32, "big")
    for sig in (bad_v, high_s):
        with pytest.raises(BatchSignatureError):
            recover_agent(SignedBatch(batch=signed.batch, signature="0x" + sig.hex()))
    with pytest.raises(ValidationError):
        SignedBatch(batch=signed.batch, signature="0x1234")


def test_sign_batch_refuses_another_key() -> None:
    batch = t.batch([t.sample(t.uuids()[0], t.T0, "10")])
    with pytest.raises(ValueError, match="is not the batch's agent"):
        sign_batch(batch, t.outsider_key())


def test_batch_refuses_duplicate_samples_and_bad_fields() -> None:
    s = t.sample(t.uuids()[0], t.T0, "10")
    with pytest.raises(ValidationError, match="two samples"):
        t.batch([s, s])
    with pytest.raises(ValidationError):
        TelemetryBatch.model_validate({**t.batch([s]).canonical(), "source": "ipmi"})
    with pytest.raises(ValidationError):
        TelemetryBatch.model_validate({**t.batch([s]).canonical(), "sequence": 0})
    with pytest.raises(ValidationError):
        TelemetryBatch.model_validate({**t.batch([s]).canonical(), "extra": 1})
