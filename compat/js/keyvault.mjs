// keyvault.mjs acts as an application using the unmodified Azure SDK for
// JavaScript against a keygate vault. internal/server's tests run it:
//
//	node keyvault.mjs SCENARIO...
//
// with the scenarios secrets, certificates, read and other (see below). What to
// do comes from the environment:
//
//	NODE_EXTRA_CA_CERTS       the vault's CA (Node reads it at start)
//	KEYGATE_VAULT_URL         the vault
//	KEYGATE_OTHER_VAULT_URL   another vault, for the scenario other
//	KEYGATE_CREDENTIAL        secret | certificate | managed | default
//	KEYGATE_TENANT_ID, KEYGATE_CLIENT_ID, KEYGATE_AUTHORITY_HOST
//	KEYGATE_CLIENT_SECRET     for secret
//	KEYGATE_CLIENT_CERTIFICATE  a PEM file with key and certificate, for certificate
//	KEYGATE_SEND_CHAIN        1 sends the certificate chain (x5c) in assertions
//	(managed and default (DefaultAzureCredential) read IDENTITY_ENDPOINT
//	and IDENTITY_HEADER, as the SDK does)
//	KEYGATE_VERIFY_CHALLENGE  1 keeps the challenge resource verification on
//	KEYGATE_RESOLVE           an IP address every host name resolves to, as
//	                          a hosts file entry would
//
// It prints one JSON object on stdout, the results of each scenario under
// its name. Values read back are reported as SHA-256 digests, never as
// themselves. An unexpected error ends it with status 1 and the SDK's
// error name, code and HTTP status on stderr.

import { createHash, createPrivateKey, X509Certificate } from "node:crypto";
import dns from "node:dns";
import { readFileSync } from "node:fs";
import tls from "node:tls";

import {
  ClientCertificateCredential,
  ClientSecretCredential,
  DefaultAzureCredential,
  ManagedIdentityCredential,
} from "@azure/identity";
import { CertificateClient } from "@azure/keyvault-certificates";
import { SecretClient } from "@azure/keyvault-secrets";

const env = process.env;
const poll = { intervalInMs: 100 };

// Names the tests could not reach otherwise resolve to KEYGATE_RESOLVE:
// Node's sockets look names up through dns.lookup when they connect.
if (env.KEYGATE_RESOLVE) {
  const ip = env.KEYGATE_RESOLVE;
  dns.lookup = (_host, options, callback) => {
    const cb = typeof options === "function" ? options : callback;
    const family = ip.includes(":") ? 6 : 4;
    if (typeof options === "object" && options?.all) {
      cb(null, [{ address: ip, family }]);
    } else {
      cb(null, ip, family);
    }
  };
}

function required(name) {
  const v = env[name];
  if (!v) {
    throw new Error(`${name} is not set`);
  }
  return v;
}

function sha256(data) {
  return createHash("sha256").update(data).digest("hex");
}

function credential() {
  const options = {
    authorityHost: env.KEYGATE_AUTHORITY_HOST,
    disableInstanceDiscovery: true,
  };
  switch (required("KEYGATE_CREDENTIAL")) {
    case "secret":
      return new ClientSecretCredential(
        required("KEYGATE_TENANT_ID"),
        required("KEYGATE_CLIENT_ID"),
        required("KEYGATE_CLIENT_SECRET"),
        options,
      );
    case "certificate":
      return new ClientCertificateCredential(
        required("KEYGATE_TENANT_ID"),
        required("KEYGATE_CLIENT_ID"),
        { certificatePath: required("KEYGATE_CLIENT_CERTIFICATE") },
        { ...options, sendCertificateChain: env.KEYGATE_SEND_CHAIN === "1" },
      );
    case "managed":
      return new ManagedIdentityCredential();
    case "default":
      return new DefaultAzureCredential();
    default:
      throw new Error("KEYGATE_CREDENTIAL must be secret, certificate, managed or default");
  }
}

// expectError runs fn, which must fail with an HTTP error, and returns
// its status and Key Vault error code.
async function expectError(fn) {
  try {
    await fn();
  } catch (e) {
    if (e.statusCode === undefined) {
      throw e;
    }
    return { status: e.statusCode, code: e.code };
  }
  return { status: 200 };
}

async function collect(iter) {
  const out = [];
  for await (const x of iter) {
    out.push(x);
  }
  return out;
}

// secrets exercises SecretClient from set to restore. The test chooses
// the unicode and the large value (KEYGATE_UNICODE_VALUE,
// KEYGATE_BIG_VALUE) and checks them through the Go SDK too.
async function secrets(sc) {
  const r = {};
  const first = await sc.setSecret("js-secret", "first", {
    contentType: "text/plain",
    tags: { step: "one" },
  });
  const second = await sc.setSecret("js-secret", "second");
  const latest = await sc.getSecret("js-secret");
  const byVersion = await sc.getSecret("js-secret", { version: first.properties.version });
  r.set = {
    firstVersion: first.properties.version,
    secondVersion: second.properties.version,
    latestVersion: latest.properties.version,
    latestIsSecond: latest.value === "second",
    byVersionIsFirst: byVersion.value === "first",
    contentType: byVersion.properties.contentType,
    tags: byVersion.properties.tags,
    id: latest.properties.id,
    vaultUrl: latest.properties.vaultUrl,
    created: latest.properties.createdOn?.getTime(),
    recoveryLevel: latest.properties.recoveryLevel,
  };

  const updated = await sc.updateSecretProperties("js-secret", first.properties.version, {
    enabled: false,
    contentType: "application/json",
    tags: { step: "two" },
  });
  r.update = {
    enabled: updated.enabled,
    contentType: updated.contentType,
    tags: updated.tags,
    disabledGet: await expectError(() => sc.getSecret("js-secret", { version: first.properties.version })),
  };

  const unicode = required("KEYGATE_UNICODE_VALUE");
  const big = required("KEYGATE_BIG_VALUE");
  await sc.setSecret("js-unicode", unicode, { tags: { "schlüssel": "wért ✓" } });
  await sc.setSecret("js-big", big);
  const u = await sc.getSecret("js-unicode");
  const b = await sc.getSecret("js-big");
  r.values = {
    unicode: sha256(u.value),
    unicodeTags: u.properties.tags,
    big: sha256(b.value),
    bigLength: b.value.length,
  };

  r.missing = await expectError(() => sc.getSecret("js-missing"));

  const notBefore = new Date(Date.UTC(2026, 0, 2, 3, 4, 5));
  const expiresOn = new Date(Date.UTC(2036, 0, 2, 3, 4, 5));
  await sc.setSecret("js-dated", "dated", { notBefore, expiresOn, enabled: false });
  const dated = (await collect(sc.listPropertiesOfSecretVersions("js-dated")))[0];
  r.dated = {
    notBefore: dated.notBefore?.getTime() === notBefore.getTime(),
    expiresOn: dated.expiresOn?.getTime() === expiresOn.getTime(),
    enabled: dated.enabled,
    get: await expectError(() => sc.getSecret("js-dated")),
  };
  await (await sc.beginDeleteSecret("js-dated", poll)).pollUntilDone();
  await sc.purgeDeletedSecret("js-dated");

  for (let i = 0; i < 12; i++) {
    await sc.setSecret(`js-page-${String(i).padStart(2, "0")}`, `v${i}`);
  }
  const pages = [];
  for await (const page of sc.listPropertiesOfSecrets().byPage({ maxPageSize: 5 })) {
    pages.push(page.map((p) => p.name));
  }
  const all = await collect(sc.listPropertiesOfSecrets());
  const versions = await collect(sc.listPropertiesOfSecretVersions("js-secret"));
  r.list = {
    pages,
    all: all.map((p) => p.name),
    versions: versions.map((p) => ({ version: p.version, enabled: p.enabled })),
  };

  const deleted = await (await sc.beginDeleteSecret("js-secret", poll)).pollUntilDone();
  const got = await sc.getDeletedSecret("js-secret");
  const listedDeleted = await collect(sc.listDeletedSecrets());
  r.delete = {
    name: deleted.name,
    recoveryId: deleted.recoveryId,
    deletedOn: deleted.properties.deletedOn?.getTime() ?? deleted.deletedOn?.getTime(),
    scheduledPurgeDate:
      deleted.properties.scheduledPurgeDate?.getTime() ?? deleted.scheduledPurgeDate?.getTime(),
    getDeletedName: got.name,
    listed: listedDeleted.map((d) => d.name),
    setWhileDeleted: await expectError(() => sc.setSecret("js-secret", "third")),
  };

  const recovered = await (await sc.beginRecoverDeletedSecret("js-secret", poll)).pollUntilDone();
  const afterRecover = await sc.getSecret("js-secret");
  r.recover = { name: recovered.name, latestIsSecond: afterRecover.value === "second" };

  const backup = await sc.backupSecret("js-secret");
  await (await sc.beginDeleteSecret("js-secret", poll)).pollUntilDone();
  await sc.purgeDeletedSecret("js-secret");
  const afterPurge = await expectError(() => sc.getDeletedSecret("js-secret"));
  const restored = await sc.restoreSecretBackup(backup);
  const afterRestore = await sc.getSecret("js-secret");
  const restoredVersions = await collect(sc.listPropertiesOfSecretVersions("js-secret"));
  r.backup = {
    size: backup.length,
    afterPurge,
    restoredName: restored.name,
    latestIsSecond: afterRestore.value === "second",
    versions: restoredVersions.length,
    restoreExisting: await expectError(() => sc.restoreSecretBackup(backup)),
  };
  return r;
}

// servedBy starts a TLS server on loopback with a PKCS#12 bundle, connects
// to it, and returns the SHA-256 of the certificate it served: proof that
// OpenSSL, through Node, opens the bundle and that its key pairs with
// its certificate.
async function servedBy(pfx) {
  const server = tls.createServer({ pfx }, (s) => s.end());
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  try {
    return await new Promise((resolve, reject) => {
      const s = tls.connect({ host: "127.0.0.1", port: server.address().port, rejectUnauthorized: false }, () => {
        const raw = s.getPeerCertificate().raw;
        s.destroy();
        resolve(sha256(raw));
      });
      s.once("error", reject);
    });
  } finally {
    server.close();
  }
}

// pemParts checks a PEM secret: its key must pair with its first
// certificate.
function pemParts(text) {
  const key = createPrivateKey(text);
  const cert = new X509Certificate(text);
  return { keyType: key.asymmetricKeyType, keyPairs: cert.checkPrivateKey(key), cert: sha256(cert.raw) };
}

async function certificates(cc, sc) {
  const r = {};

  const pfx = readFileSync(required("KEYGATE_PFX_FILE"));
  const imported = await cc.importCertificate("js-pfx", pfx, { password: env.KEYGATE_PFX_PASSWORD });
  const got = await cc.getCertificate("js-pfx");
  const pfxSecret = await sc.getSecret("js-pfx");
  r.pfx = {
    importedVersion: imported.properties.version,
    version: got.properties.version,
    cer: sha256(got.cer),
    x5t: Buffer.from(got.properties.x509Thumbprint).toString("hex"),
    secretId: got.secretId,
    keyId: got.keyId,
    contentType: pfxSecret.properties.contentType,
    managed: pfxSecret.properties.managed,
    served: await servedBy(Buffer.from(pfxSecret.value, "base64")),
  };

  const pem = readFileSync(required("KEYGATE_PEM_FILE"));
  await cc.importCertificate("js-pem", pem, { policy: { contentType: "application/x-pem-file" } });
  const gotPem = await cc.getCertificate("js-pem");
  const pemSecret = await sc.getSecret("js-pem");
  r.pem = {
    cer: sha256(gotPem.cer),
    contentType: pemSecret.properties.contentType,
    secret: pemParts(pemSecret.value),
  };

  const policy = {
    issuerName: "Self",
    subject: "CN=js.keygate.test",
    subjectAlternativeNames: { dnsNames: ["js.keygate.test", "www.js.keygate.test"] },
    keyType: "EC",
    keyCurveName: "P-256",
    validityInMonths: 6,
    contentType: "application/x-pkcs12",
  };
  const first = await (await cc.beginCreateCertificate("js-self", policy, poll)).pollUntilDone();
  const second = await (await cc.beginCreateCertificate("js-self", policy, poll)).pollUntilDone();
  const readPolicy = await cc.getCertificatePolicy("js-self");
  const versions = await collect(cc.listPropertiesOfCertificateVersions("js-self"));
  const createdSecret = await sc.getSecret("js-self");
  r.created = {
    firstVersion: first.properties.version,
    secondVersion: second.properties.version,
    cer: sha256(second.cer),
    policy: {
      issuerName: readPolicy.issuerName,
      subject: readPolicy.subject,
      dnsNames: readPolicy.subjectAlternativeNames?.dnsNames,
      keyType: readPolicy.keyType,
      keyCurveName: readPolicy.keyCurveName,
      validityInMonths: readPolicy.validityInMonths,
      contentType: readPolicy.contentType,
    },
    versions: versions.map((v) => v.version),
    served: await servedBy(Buffer.from(createdSecret.value, "base64")),
  };
  r.missing = await expectError(() => cc.getCertificate("js-missing"));
  r.lifecycle = await certificateLifecycle(cc);
  return r;
}

// certificateLifecycle goes on with the certificates the scenario made:
// properties, policy, operations, contacts, delete to restore.
async function certificateLifecycle(cc) {
  const r = {};
  const props = await cc.updateCertificateProperties("js-pfx", "", { tags: { env: "test" } });
  // updateCertificatePolicy answers an empty policy whatever the service
  // said (the SDK drops the response), so the policy is read back.
  await cc.updateCertificatePolicy("js-self", {
    issuerName: "Self",
    subject: "CN=js.keygate.test",
    validityInMonths: 12,
    lifetimeActions: [{ action: "AutoRenew", lifetimePercentage: 80 }],
  });
  const policy = await cc.getCertificatePolicy("js-self");
  const op = (await cc.getCertificateOperation("js-self", poll)).getOperationState();
  const listed = await collect(cc.listPropertiesOfCertificates());
  r.update = {
    tags: props.properties.tags,
    validityInMonths: policy.validityInMonths,
    lifetimeActions: policy.lifetimeActions,
    keyCurveName: policy.keyCurveName,
    operation: op.certificateOperation?.status,
    operationDone: op.isCompleted,
    listed: listed.map((p) => p.name),
  };

  const contacts = [{ email: "ops@keygate.test", name: "Ops", phone: "555-0100" }];
  const set = await cc.setContacts(contacts);
  const got = await cc.getContacts();
  await cc.deleteContacts();
  r.contacts = {
    set: set?.map((c) => c.email),
    got: got?.map((c) => c.email),
    afterDelete: await expectError(() => cc.getContacts()),
  };

  const deleted = await (await cc.beginDeleteCertificate("js-pem", poll)).pollUntilDone();
  const gotDeleted = await cc.getDeletedCertificate("js-pem");
  const listedDeleted = await collect(cc.listDeletedCertificates());
  const recovered = await (await cc.beginRecoverDeletedCertificate("js-pem", poll)).pollUntilDone();
  const backup = await cc.backupCertificate("js-pem");
  await (await cc.beginDeleteCertificate("js-pem", poll)).pollUntilDone();
  await cc.purgeDeletedCertificate("js-pem");
  const afterPurge = await expectError(() => cc.getDeletedCertificate("js-pem"));
  const restored = await cc.restoreCertificateBackup(backup);
  r.delete = {
    recoveryId: deleted.recoveryId,
    deletedOn: deleted.deletedOn?.getTime(),
    scheduledPurgeDate: deleted.scheduledPurgeDate?.getTime(),
    gotDeleted: gotDeleted.name,
    listed: listedDeleted.map((d) => d.name),
    recovered: recovered.name,
    backupSize: backup?.length,
    afterPurge,
    restored: restored.name,
    restoredCer: sha256(restored.cer),
  };

  // A certificate an outside CA must sign: the operation poller reads the
  // version being made, then the operation is cancelled and deleted.
  await cc.beginCreateCertificate("js-pending", {
    issuerName: "Unknown",
    subject: "CN=pending.keygate.test",
    keyType: "EC",
    keyCurveName: "P-256",
  }, poll);
  const opPoller = await cc.getCertificateOperation("js-pending", poll);
  const state = opPoller.getOperationState();
  await opPoller.cancelOperation();
  const cancelled = opPoller.getOperationState().certificateOperation;
  const removed = await cc.deleteCertificateOperation("js-pending");
  r.pending = {
    status: state.certificateOperation?.status,
    issuerName: state.certificateOperation?.issuerName,
    version: state.result?.properties.version,
    enabled: state.result?.properties.enabled,
    hasCer: state.result?.cer !== undefined,
    cancellationRequested: cancelled?.cancellationRequested,
    removed: removed?.name,
    afterDelete: await expectError(() => cc.getCertificate("js-pending")),
  };
  return r;
}

// read reads KEYGATE_SECRET_NAME.
async function read(sc) {
  const s = await sc.getSecret(required("KEYGATE_SECRET_NAME"));
  return { id: s.properties.id, value: sha256(s.value) };
}

async function main() {
  const vaultUrl = required("KEYGATE_VAULT_URL");
  const cred = credential();
  const options = { disableChallengeResourceVerification: env.KEYGATE_VERIFY_CHALLENGE !== "1" };
  const sc = new SecretClient(vaultUrl, cred, options);
  const cc = new CertificateClient(vaultUrl, cred, options);
  const scenarios = {
    secrets: () => secrets(sc),
    certificates: () => certificates(cc, sc),
    read: () => read(sc),
    // other reads the same name from KEYGATE_OTHER_VAULT_URL, with the
    // same credential.
    other: () => read(new SecretClient(required("KEYGATE_OTHER_VAULT_URL"), cred, options)),
  };
  const out = {};
  for (const name of process.argv.slice(2)) {
    if (!scenarios[name]) {
      throw new Error(`unknown scenario ${JSON.stringify(name)}: want ${Object.keys(scenarios).join(", ")}`);
    }
    out[name] = await scenarios[name]();
  }
  process.stdout.write(JSON.stringify(out) + "\n");
}

main().catch((e) => {
  // Only what identifies the failure: SDK errors carry the request, whose
  // headers hold a bearer token, so the error itself is never printed.
  const report = { error: e.name, code: e.code, status: e.statusCode, message: e.message, at: e.stack?.split("\n")[1]?.trim() };
  process.stderr.write(JSON.stringify(report) + "\n");
  process.exit(1);
});
