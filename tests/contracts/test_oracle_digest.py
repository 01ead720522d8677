"""OracleHub's EIP-712 encoding against the one Python definition (`oracle/attest.py`):
type strings, typehashes, the domain, and the digests of random reports over the full
range of every field; a digest (and so a signature) is bound to one chain and one hub."""

from __future__ import annotations

import boa
import pytest
from eth_account.messages import encode_typed_data
from eth_utils import keccak, to_checksum_address
from hypothesis import given
from hypothesis import strategies as st

from oracle import attest
from tests.contracts import oracle_helpers as oh

bytes32 = st.binary(min_size=32, max_size=32).map(oh.hx)
addresses = st.binary(min_size=20, max_size=20).map(to_checksum_address)
uint16 = st.integers(0, 2**16 - 1)
uint32 = st.integers(0, 2**32 - 1)
uint64 = st.integers(0, 2**64 - 1)
uint256 = st.integers(0, 2**256 - 1)
int256 = st.integers(-(2**255), 2**255 - 1)

price_reports = st.builds(
    attest.PriceReport,
    feed_id=bytes32,
    value=int256,
    confidence=uint256,
    observed_at=uint64,
    methodology_version=uint32,
    inputs_hash=bytes32,
    log_size=uint64,
    log_root=bytes32,
    config_version=uint64,
)


@st.composite
def utilisation_reports(draw):
    fields = dict(
        spv_token=draw(addresses),
        period_start=draw(uint64),
        period_end=draw(uint64),
        gpu_count=draw(uint32),
        utilisation_bps=draw(st.one_of(st.integers(0, 10_000), uint16)),
        rental_revenue=draw(uint256),
        inputs_hash=draw(bytes32),
        log_size=draw(uint64),
        log_root=draw(bytes32),
        config_version=draw(uint64),
    )
    # The pydantic model stops at 10,000 bps; the EIP-712 type is a full uint16.
    if fields["utilisation_bps"] > 10_000:
        return attest.UtilisationReport.model_construct(**fields)
    return attest.UtilisationReport(**fields)


def eth_account_digest(report, dom) -> bytes:
    """The digest by eth-account's independent EIP-712 encoder (`attest.digest` encodes
    directly, as the hub does), over `attest.typed_data`."""
    message = encode_typed_data(full_message=attest.typed_data(report, dom))
    return keccak(b"\x19" + message.version + message.header + message.body)


@pytest.fixture(scope="module")
def signers():
    return oh.make_signers(3, "digest-signer")


@pytest.fixture(scope="module")
def hub(oracle_admin, signers):
    h = oh.deploy_hub(oracle_admin)
    oh.install(h, oracle_admin, signers, 2)
    oh.add_feed(h, oracle_admin)
    return h


@pytest.fixture(scope="module")
def dom(hub):
    return oh.domain(hub)


# ------------------------------------------------------------------ constants


def test_type_strings_are_the_python_definitions(hub):
    assert hub.PRICE_REPORT_TYPE() == attest.PRICE_REPORT_TYPE
    assert hub.UTILISATION_REPORT_TYPE() == attest.UTILISATION_REPORT_TYPE
    assert hub.PRICE_REPORT_TYPEHASH() == keccak(text=attest.PRICE_REPORT_TYPE)
    assert hub.UTILISATION_REPORT_TYPEHASH() == keccak(text=attest.UTILISATION_REPORT_TYPE)
    # The literal strings, so a change on both sides at once is still noticed.
    assert attest.PRICE_REPORT_TYPE == (
        "PriceReport(bytes32 feedId,int256 value,uint256 confidence,uint64 observedAt,"
        "uint32 methodologyVersion,bytes32 inputsHash,uint64 logSize,bytes32 logRoot,"
        "uint64 configVersion)"
    )
    assert attest.UTILISATION_REPORT_TYPE == (
        "UtilisationReport(address spvToken,uint64 periodStart,uint64 periodEnd,"
        "uint32 gpuCount,uint16 utilisationBps,uint256 rentalRevenue,bytes32 inputsHash,"
        "uint64 logSize,bytes32 logRoot,uint64 configVersion)"
    )
    assert hub.MAX_SIGNERS() == attest.MAX_SIGNERS == oh.MAX_SIGNERS
    assert hub.PRICE_DECIMALS() == attest.PRICE_DECIMALS
    assert hub.RING_SIZE() == oh.RING_SIZE
    assert hub.ORACLE_ADMIN_ROLE() == oh.ORACLE_ADMIN_ROLE
    assert attest.SECP256K1_HALF_N == oh.HALF_N


def test_domain_separator_and_eip712_domain(hub, dom):
    assert hub.DOMAIN_SEPARATOR() == dom.separator()
    assert dom.separator() == keccak(
        keccak(text="EIP712Domain(string name,string version,uint256 chainId,"
                    "address verifyingContract)")
        + keccak(text="GPU Oracle Hub")
        + keccak(text="1")
        + dom.chain_id.to_bytes(32, "big")
        + bytes(12) + bytes.fromhex(hub.address[2:])
    )
    fields, name, version, chain_id, contract, salt, extensions = hub.eip712Domain()
    assert fields == b"\x0f"  # name, version, chainId, verifyingContract
    assert (name, version) == (attest.DOMAIN_NAME, attest.DOMAIN_VERSION)
    assert chain_id == boa.env.evm.patch.chain_id == dom.chain_id
    assert contract == hub.address
    assert salt == oh.ZERO32 and extensions == []


# ------------------------------------------------------------------ digests


@given(report=price_reports)
def test_price_digest_matches_python(hub, dom, report):
    on_chain = hub.price_report_digest(report.as_tuple())
    assert on_chain == attest.digest(report, dom) == eth_account_digest(report, dom)


@given(report=utilisation_reports())
def test_utilisation_digest_matches_python(hub, dom, report):
    on_chain = hub.utilisation_report_digest(report.as_tuple())
    assert on_chain == attest.digest(report, dom) == eth_account_digest(report, dom)


PRICE_FIELD_VALUES = {
    "feed_id": bytes32, "value": int256, "confidence": uint256, "observed_at": uint64,
    "methodology_version": uint32, "inputs_hash": bytes32, "log_size": uint64,
    "log_root": bytes32, "config_version": uint64,
}


@given(report=price_reports, data=st.data())
def test_every_price_field_is_signed(hub, dom, report, data):
    """Changing any one field changes the digest (every field is part of the message)."""
    name = data.draw(st.sampled_from(sorted(PRICE_FIELD_VALUES)))
    new = data.draw(PRICE_FIELD_VALUES[name].filter(lambda v: v != getattr(report, name)))
    other = report.model_copy(update={name: new})
    assert hub.price_report_digest(other.as_tuple()) == attest.digest(other, dom)
    assert attest.digest(other, dom) != attest.digest(report, dom)


def test_extreme_values_encode_like_python(hub, dom):
    """Sign-extension corners of int256 and the top of every unsigned field."""
    for value in (-(2**255), -1, 0, 1, 2**255 - 1, -(2**111), 2**111 - 1):
        report = attest.PriceReport(
            feed_id=oh.hx(b"\xff" * 32), value=value, confidence=2**256 - 1,
            observed_at=2**64 - 1, methodology_version=2**32 - 1, inputs_hash=oh.hx(b"\x80" * 32),
            log_size=2**64 - 1, log_root=oh.hx(oh.ZERO32), config_version=2**64 - 1,
        )
        assert hub.price_report_digest(report.as_tuple()) == attest.digest(report, dom)
        assert attest.digest(report, dom) == eth_account_digest(report, dom)
    report = oh.utilisation_report(
        to_checksum_address("0x" + "ff" * 20), 2**64 - 1, 2**64 - 1, 2**64 - 1,
        gpu_count=2**32 - 1, utilisation_bps=2**16 - 1, rental_revenue=2**256 - 1,
    )
    assert hub.utilisation_report_digest(report.as_tuple()) == attest.digest(report, dom)
    assert attest.digest(report, dom) == eth_account_digest(report, dom)


# ------------------------------------------------------------------ domain binding


@given(report=price_reports, other_chain=st.integers(1, 2**64))
def test_digest_is_bound_to_chain_and_hub(hub, dom, report, other_chain):
    on_hub = hub.price_report_digest(report.as_tuple())
    if other_chain != dom.chain_id:
        other = attest.Domain(chain_id=other_chain, hub=hub.address)
        assert attest.digest(report, other) != on_hub
    elsewhere = attest.Domain(chain_id=dom.chain_id, hub=oh.ZERO[:-1] + "1")
    assert attest.digest(report, elsewhere) != on_hub


def _valid_price(hub):
    boa.env.time_travel(seconds=60)
    return oh.price_report(2 * oh.USD, oh.now(), hub.config_version(), log_size=3)


def test_signatures_for_another_chain_are_refused(hub, dom, signers):
    report = _valid_price(hub)
    wrong = attest.Domain(chain_id=dom.chain_id + 1, hub=hub.address)
    with boa.reverts(oh.UNAUTHORISED):
        oh.submit_price(hub, report, oh.cosigned(report, wrong, signers[:2]))
    # The same report signed for this chain is accepted.
    assert oh.submit_price(hub, report, oh.cosigned(report, dom, signers[:2])) is True


def test_utilisation_signatures_for_another_chain_are_refused(hub, dom, signers):
    boa.env.time_travel(seconds=60)
    spv = boa.env.generate_address("digest-spv")
    report = oh.utilisation_report(spv, oh.now() - 50, oh.now(), hub.config_version())
    wrong = attest.Domain(chain_id=dom.chain_id + 1, hub=hub.address)
    with boa.reverts(oh.UNAUTHORISED):
        oh.submit_utilisation(hub, report, oh.cosigned(report, wrong, signers))
    oh.submit_utilisation(hub, report, oh.cosigned(report, dom, signers))
    assert hub.utilisation(spv).round_id == 1


def test_signatures_for_another_hub_are_refused(hub, dom, signers, oracle_admin):
    """A second hub with the same signers, feed and config version: a report signed for
    the first is refused by the second, and the other way round."""
    twin = oh.deploy_hub(oracle_admin)
    oh.install(twin, oracle_admin, signers, 2)
    oh.add_feed(twin, oracle_admin)
    assert twin.config_version() == hub.config_version()
    assert twin.DOMAIN_SEPARATOR() != hub.DOMAIN_SEPARATOR()
    report = _valid_price(hub)
    assert twin.price_report_digest(report.as_tuple()) != hub.price_report_digest(
        report.as_tuple()
    )
    for_hub = oh.cosigned(report, dom, signers[:2])
    for_twin = oh.cosigned(report, oh.domain(twin), signers[:2])
    with boa.reverts(oh.UNAUTHORISED):
        oh.submit_price(twin, report, for_hub)
    with boa.reverts(oh.UNAUTHORISED):
        oh.submit_price(hub, report, for_twin)
    assert oh.submit_price(twin, report, for_twin) is True
    assert oh.submit_price(hub, report, for_hub) is True


def test_chain_fork_moves_the_domain(hub, dom, signers):
    """After a chain-id change (a fork), the hub signs under the new chain id: reports
    signed for the old chain are refused there."""
    report = _valid_price(hub)
    old_signatures = oh.cosigned(report, dom, signers[:2])
    boa.env.evm.patch.chain_id = dom.chain_id + 7  # restored by the per-test anchor
    forked = oh.domain(hub)
    assert forked.chain_id == dom.chain_id + 7
    assert hub.DOMAIN_SEPARATOR() == forked.separator() != dom.separator()
    assert hub.eip712Domain()[3] == forked.chain_id
    assert hub.price_report_digest(report.as_tuple()) == attest.digest(report, forked)
    with boa.reverts(oh.UNAUTHORISED):
        oh.submit_price(hub, report, old_signatures)
    assert oh.submit_price(hub, report, oh.cosigned(report, forked, signers[:2])) is True


def test_python_recovers_the_signers_from_the_hub_digest(hub, dom, signers):
    report = _valid_price(hub)
    signed = attest.cosign(report, dom, [s.key for s in signers])
    assert signed.digest() == hub.price_report_digest(report.as_tuple())
    assert attest.check_signatures(signed, oh.addresses(signers), 2) == oh.addresses(signers)
    assert signed.signature_structs() == oh.cosigned(report, dom, signers)
    assert oh.submit_price(hub, report, signed.signature_structs()) is True
