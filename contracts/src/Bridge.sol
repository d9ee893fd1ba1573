// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @title Alys bridge
/// @notice Peg-out entry point of the Alys sidechain. A user burns BTC (the chain's native coin) by calling
/// `requestPegOut` with the Bitcoin address to be paid; the federation pays that address on Bitcoin once the
/// block carrying the burn is finalized by merged mining.
/// @dev Predeployed at 0xbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbB in every Alys genesis. The ABI of
/// `requestPegOut` and `RequestPegOut` is Alys's and must not change: wallets, scripts and the node's burn
/// extractor depend on the selector 0x9911dc74 and the topic
/// 0xaa1c6070bc915de33c0fbc36ecf77b1e4fc1ebce832b2da62b6fe25f5a7dd5b0.
///
/// The burned value is forwarded to `BURN_ADDRESS` in the same call, so this contract's balance is always
/// zero and the burned supply stays visible at one well-known address, as on Alys.
contract Bridge {
    /// @notice Where burned value goes. Nobody holds a key for it.
    address payable public constant BURN_ADDRESS = payable(0x000000000000000000000000000000000000dEaD);

    /// @notice Smallest peg-out: 1,000,000 sats (1 sat = 10^10 wei).
    uint256 public constant MIN_PEGOUT_WEI = 1e16;

    /// @notice Longest accepted Bitcoin address, as raw bytes of its string form.
    uint256 public constant MAX_BITCOIN_ADDRESS_LENGTH = 90;

    /// @notice A peg-out was requested: `value` wei were burned by `evmAddress` to be paid to `bitcoinAddress`.
    event RequestPegOut(address indexed evmAddress, bytes bitcoinAddress, uint256 value);

    /// @notice The value sent is below `MIN_PEGOUT_WEI`.
    error PegOutBelowMinimum(uint256 value, uint256 minimum);

    /// @notice The Bitcoin address is empty or longer than `MAX_BITCOIN_ADDRESS_LENGTH` bytes.
    error InvalidBitcoinAddressLength(uint256 length);

    /// @notice Forwarding the burned value to `BURN_ADDRESS` failed.
    error BurnFailed();

    /// @notice Plain transfers carry no Bitcoin address, so they are refused rather than silently kept.
    error MissingBitcoinAddress();

    /// @notice Burns `msg.value` and asks the federation to pay it to `bitcoinAddress` on Bitcoin.
    /// @param bitcoinAddress the destination address, as the bytes of its string form (e.g. "bcrt1q...").
    function requestPegOut(bytes calldata bitcoinAddress) external payable {
        if (msg.value < MIN_PEGOUT_WEI) {
            revert PegOutBelowMinimum(msg.value, MIN_PEGOUT_WEI);
        }
        uint256 length = bitcoinAddress.length;
        if (length == 0 || length > MAX_BITCOIN_ADDRESS_LENGTH) {
            revert InvalidBitcoinAddressLength(length);
        }
        (bool ok,) = BURN_ADDRESS.call{value: msg.value}("");
        if (!ok) {
            revert BurnFailed();
        }
        emit RequestPegOut(msg.sender, bitcoinAddress, msg.value);
    }

    receive() external payable {
        revert MissingBitcoinAddress();
    }
}
