// Validates the cert-manager objects on stdin (a JSON array) against cert-manager's own v1 CRD
// schemas, as @kubernetes-models/cert-manager generates them from the CRDs. Prints one
// "ok KIND NAME" line per object; exits 1 on the first that does not validate, 2 on a kind it
// does not know.
import fs from "node:fs";
import { Certificate, Issuer } from "@kubernetes-models/cert-manager/cert-manager.io/v1";

const kinds = { Certificate, Issuer };
const docs = JSON.parse(fs.readFileSync(0, "utf8"));
for (const doc of docs) {
  const Kind = kinds[doc.kind];
  if (!Kind) {
    console.error(`no cert-manager schema for kind ${doc.kind}`);
    process.exit(2);
  }
  try {
    new Kind(doc).validate();
  } catch (e) {
    console.error(`${doc.kind} ${doc.metadata?.name}: ${e.message}`);
    process.exit(1);
  }
  console.log(`ok ${doc.kind} ${doc.metadata.name}`);
}
