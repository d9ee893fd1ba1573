// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

interface IBridge {
    function requestPegOut(bytes calldata bitcoinAddress) external payable;
}

/// @notice Test helper: two peg-outs in one transaction, to check that each emits its own event.
contract PegOutTwice {
    /// @notice Splits `msg.value` into two peg-outs to `first` and `second`.
    function pegOutTwice(IBridge bridge, bytes calldata first, bytes calldata second) external payable {
        uint256 half = msg.value / 2;
        bridge.requestPegOut{value: half}(first);
        bridge.requestPegOut{value: msg.value - half}(second);
    }
}
