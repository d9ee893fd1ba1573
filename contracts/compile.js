#!/usr/bin/env node
// Compiles the contracts under src/ and test/ with the solc pinned in package.json and writes one artifact
// per contract to artifacts/. With --check it writes nothing and exits 1 when a committed artifact differs
// from a fresh compile, so CI catches a Solidity edit that was not recompiled.
'use strict';

const fs = require('fs');
const path = require('path');
const crypto = require('crypto');
const solc = require('solc');

const ROOT = __dirname;
const OUT = path.join(ROOT, 'artifacts');
const SOURCES = [
  { file: 'src/Bridge.sol', contract: 'Bridge' },
  { file: 'test/PegOutTwice.sol', contract: 'PegOutTwice' },
  { file: 'test/BenchToken.sol', contract: 'BenchToken' },
];
// One setting for every chain: Shanghai bytecode runs on Shanghai, Cancun and Prague genesis alike.
const SETTINGS = {
  evmVersion: 'shanghai',
  optimizer: { enabled: true, runs: 200 },
  outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } },
};

function compile() {
  const sources = {};
  for (const { file } of SOURCES) {
    sources[file] = { content: fs.readFileSync(path.join(ROOT, file), 'utf8') };
  }
  const output = JSON.parse(solc.compile(JSON.stringify({ language: 'Solidity', sources, settings: SETTINGS })));
  const errors = (output.errors || []).filter((e) => e.severity === 'error');
  for (const e of output.errors || []) console.error(e.formattedMessage);
  if (errors.length > 0) process.exit(2);

  const artifacts = {};
  for (const { file, contract } of SOURCES) {
    const c = output.contracts[file][contract];
    const artifact = {
      contractName: contract,
      sourceName: file,
      sourceSha256: '0x' + crypto.createHash('sha256').update(sources[file].content).digest('hex'),
      compiler: { name: 'solc', version: solc.version() },
      settings: { evmVersion: SETTINGS.evmVersion, optimizer: SETTINGS.optimizer },
      abi: c.abi,
      bytecode: '0x' + c.evm.bytecode.object,
      deployedBytecode: '0x' + c.evm.deployedBytecode.object,
    };
    artifacts[path.join(OUT, contract + '.json')] = JSON.stringify(artifact, null, 2) + '\n';
  }
  return artifacts;
}

const check = process.argv.includes('--check');
let stale = 0;
for (const [file, text] of Object.entries(compile())) {
  const rel = path.relative(ROOT, file);
  const old = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : null;
  if (check) {
    if (old !== text) {
      console.error(`contracts/${rel} is stale: run \`npm run build:contracts\` and commit it`);
      stale += 1;
    } else {
      console.log(`contracts/${rel} matches a fresh compile`);
    }
  } else {
    fs.mkdirSync(OUT, { recursive: true });
    fs.writeFileSync(file, text);
    console.log(`wrote contracts/${rel}`);
  }
}
process.exit(stale === 0 ? 0 : 1);
