# pragma version ~=0.4.3
# pragma optimize gas
"""
@title SPV Factory
@custom:contract-name SPVFactory
@license GNU Affero General Public License v3.0 only
@notice Registry of the special purpose vehicles (SPVs) that hold GPUs, and the
        deployer of each SPV's `GPUShareToken` from one blueprint.
        The factory admin grants `OPERATOR_ROLE`; an operator registers an SPV with
        its legal name, jurisdiction of incorporation (ISO 3166-1 numeric), Legal
        Entity Identifier (ISO 17442, checksum verified) and the hash of its legal
        documents, and receives the admin, operator and pauser roles of the new token.
@custom:security The blueprint and compliance registry addresses are fixed at
                 deployment: every token the factory lists runs the same audited code
                 under the same transfer rules.
"""


from snekmate.auth import access_control
initializes: access_control
from .modules import reasons

exports: access_control.__interface__


# @dev Role allowed to register SPVs.
OPERATOR_ROLE: public(constant(bytes32)) = keccak256("OPERATOR_ROLE")
# @dev ERC-5202 blueprint preamble length (0xFE 0x71 0x00).
BLUEPRINT_CODE_OFFSET: constant(uint256) = 3
# @dev Most SPVs `list_spvs` returns in one call.
MAX_PAGE: constant(uint256) = 100


# @dev What the registry keeps about one SPV.
struct SPV:
    legal_name: String[100]
    jurisdiction: uint16
    lei: String[20]
    documents_hash: bytes32
    token: address
    operator: address
    registered_at: uint256


# @dev ERC-5202 blueprint of GPUShareToken.
share_token_blueprint: public(immutable(address))
# @dev The ComplianceRegistry every token this factory deploys consults.
compliance_registry: public(immutable(address))

# @dev SPVs by id, ids 1..spv_count.
spvs: public(HashMap[uint256, SPV])
# @dev Number of SPVs registered (the highest id).
spv_count: public(uint256)
# @dev SPV id by share token address; 0 for a token this factory did not deploy.
spv_id_of_token: public(HashMap[address, uint256])
# @dev SPV id by keccak256 of its LEI; 0 when the LEI is not registered.
spv_id_of_lei: HashMap[bytes32, uint256]


# @dev Emitted when an SPV is registered and its share token deployed.
event SPVRegistered:
    spv_id: indexed(uint256)
    token: indexed(address)
    operator: indexed(address)
    legal_name: String[100]
    jurisdiction: uint16
    lei: String[20]
    documents_hash: bytes32
    shares_per_gpu: uint256
    income_token: address


# @dev Emitted when an SPV's legal documents change.
event SPVDocumentsUpdated:
    spv_id: indexed(uint256)
    previous_hash: bytes32
    new_hash: bytes32


# @dev Emitted when an SPV's operator account changes.
event SPVOperatorChanged:
    spv_id: indexed(uint256)
    previous_operator: indexed(address)
    new_operator: indexed(address)


@deploy
@payable
def __init__(share_token_blueprint_: address, compliance_registry_: address):
    """
    @notice Deploys the factory; the deployer becomes its admin.
    @param share_token_blueprint_ Address of the GPUShareToken ERC-5202 blueprint.
    @param compliance_registry_ The ComplianceRegistry the deployed tokens consult.
    """
    assert share_token_blueprint_.is_contract, reasons.SPV_FACTORY_BLUEPRINT_NOT_CONTRACT
    access_control.__init__()
    assert compliance_registry_.is_contract, reasons.SPV_FACTORY_COMPLIANCE_REGISTRY_NOT_CONTRACT
    share_token_blueprint = share_token_blueprint_
    compliance_registry = compliance_registry_


@external
def create_spv(
    legal_name: String[100],
    jurisdiction: uint16,
    lei: String[20],
    documents_hash: bytes32,
    token_name: String[25],
    token_symbol: String[5],
    shares_per_gpu: uint256,
    income_token: address,
) -> (uint256, address):
    """
    @notice Registers an SPV and deploys its share token. The caller becomes the
            token's admin, operator and pauser.
    @dev Only `OPERATOR_ROLE`.
    @param legal_name The SPV's registered legal name.
    @param jurisdiction ISO 3166-1 numeric code of its jurisdiction of incorporation.
    @param lei Its 20-character Legal Entity Identifier (ISO 17442).
    @param documents_hash Hash of its legal documents (for example SHA-256 of the PDF).
    @param token_name Share token name (at most 25 characters).
    @param token_symbol Share token symbol (at most 5 characters).
    @param shares_per_gpu Share base units (18 decimals) backed by each GPU.
    @param income_token ERC-20 stablecoin the rental income is paid in.
    @return uint256 The new SPV's id.
    @return address Its share token.
    """
    access_control._check_role(OPERATOR_ROLE, msg.sender)
    assert len(legal_name) != 0, reasons.SPV_FACTORY_LEGAL_NAME_EMPTY
    assert jurisdiction != 0 and jurisdiction <= 999, reasons.SPV_FACTORY_JURISDICTION_NOT_ISO_3166
    assert documents_hash != empty(bytes32), reasons.SPV_FACTORY_DOCUMENTS_HASH_ZERO
    self._check_lei(lei)
    lei_key: bytes32 = keccak256(lei)
    assert self.spv_id_of_lei[lei_key] == 0, reasons.SPV_FACTORY_LEI_ALREADY_REGISTERED

    spv_id: uint256 = self.spv_count + 1
    token: address = create_from_blueprint(
        share_token_blueprint,
        token_name,
        token_symbol,
        income_token,
        shares_per_gpu,
        spv_id,
        msg.sender,
        compliance_registry,
        code_offset=BLUEPRINT_CODE_OFFSET,
    )
    self.spv_count = spv_id
    self.spvs[spv_id] = SPV(
        legal_name=legal_name,
        jurisdiction=jurisdiction,
        lei=lei,
        documents_hash=documents_hash,
        token=token,
        operator=msg.sender,
        registered_at=block.timestamp,
    )
    self.spv_id_of_token[token] = spv_id
    self.spv_id_of_lei[lei_key] = spv_id
    log SPVRegistered(
        spv_id=spv_id,
        token=token,
        operator=msg.sender,
        legal_name=legal_name,
        jurisdiction=jurisdiction,
        lei=lei,
        documents_hash=documents_hash,
        shares_per_gpu=shares_per_gpu,
        income_token=income_token,
    )
    return (spv_id, token)


@external
def update_documents(spv_id: uint256, documents_hash: bytes32):
    """
    @notice Records a new hash of the SPV's legal documents.
    @dev Only the SPV's operator.
    @param spv_id The SPV.
    @param documents_hash The new documents hash.
    """
    previous: bytes32 = self._spv_of_operator(spv_id).documents_hash
    assert documents_hash != empty(bytes32), reasons.SPV_FACTORY_DOCUMENTS_HASH_ZERO
    assert documents_hash != previous, reasons.SPV_FACTORY_DOCUMENTS_HASH_UNCHANGED
    self.spvs[spv_id].documents_hash = documents_hash
    log SPVDocumentsUpdated(spv_id=spv_id, previous_hash=previous, new_hash=documents_hash)


@external
def set_spv_operator(spv_id: uint256, new_operator: address):
    """
    @notice Hands the SPV's registry record to another operator account. Roles on the
            share token are managed on the token itself.
    @dev Only the SPV's current operator.
    @param spv_id The SPV.
    @param new_operator The new operator account.
    """
    previous: address = self._spv_of_operator(spv_id).operator
    assert new_operator != empty(address), reasons.SPV_FACTORY_OPERATOR_ZERO_ADDRESS
    assert new_operator != previous, reasons.SPV_FACTORY_OPERATOR_UNCHANGED
    self.spvs[spv_id].operator = new_operator
    log SPVOperatorChanged(spv_id=spv_id, previous_operator=previous, new_operator=new_operator)


@external
@view
def list_spvs(start: uint256, count: uint256) -> DynArray[address, MAX_PAGE]:
    """
    @notice Share tokens of SPVs `start` .. `start + count - 1` (ids start at 1),
            at most 100, stopping at the last SPV.
    @param start First SPV id.
    @param count How many.
    @return DynArray The share token addresses, in id order.
    """
    assert start != 0, reasons.SPV_FACTORY_SPV_IDS_START_1
    assert count <= MAX_PAGE, reasons.SPV_FACTORY_MOST_100_SPVS_PER
    tokens: DynArray[address, MAX_PAGE] = []
    last: uint256 = self.spv_count
    for i: uint256 in range(count, bound=MAX_PAGE):
        spv_id: uint256 = start + i
        if spv_id > last:
            break
        tokens.append(self.spvs[spv_id].token)
    return tokens


@external
@pure
def is_valid_lei(lei: String[20]) -> bool:
    """
    @notice Whether `lei` is 20 characters of 0-9 / A-Z with valid ISO 17442
            (ISO 7064 MOD 97-10) check digits.
    @param lei The candidate LEI.
    @return bool True when valid.
    """
    return self._lei_checksum(lei) == 1


@internal
@view
def _spv_of_operator(spv_id: uint256) -> SPV:
    """
    @dev Loads an SPV and checks that the caller is its operator.
    @param spv_id The SPV.
    @return SPV The record.
    """
    spv: SPV = self.spvs[spv_id]
    assert spv.token != empty(address), reasons.SPV_FACTORY_UNKNOWN_SPV_ID
    assert spv.operator == msg.sender, reasons.SPV_FACTORY_CALLER_NOT_SPV_OPERATOR
    return spv


@internal
@pure
def _check_lei(lei: String[20]):
    """
    @dev Reverts unless `lei` is a well-formed ISO 17442 LEI.
    @param lei The candidate LEI.
    """
    assert self._lei_checksum(lei) == 1, reasons.SPV_FACTORY_LEI_NOT_20_CHARACTERS


@internal
@pure
def _lei_checksum(lei: String[20]) -> uint256:
    """
    @dev ISO 7064 MOD 97-10 remainder of the LEI read as a number (letters A-Z count
         as 10-35); a valid LEI gives 1. Malformed input gives 0.
    @param lei The candidate LEI.
    @return uint256 The remainder, or 0 when the input is malformed.
    """
    if len(lei) != 20:
        return 0
    raw: Bytes[20] = convert(lei, Bytes[20])
    remainder: uint256 = 0
    for i: uint256 in range(20):
        c: uint256 = convert(slice(raw, i, 1), uint256)
        if c >= 48 and c <= 57:
            remainder = (remainder * 10 + (c - 48)) % 97
        elif c >= 65 and c <= 90:
            remainder = (remainder * 100 + (c - 55)) % 97
        else:
            return 0
    return remainder
