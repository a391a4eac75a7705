"""Reads Gemini function declarations (a JSON list, from a file named on the command line)
and validates each with google-genai's own types (`types.FunctionDeclaration`, a pydantic
model that refuses unknown fields). Prints how many passed; exits 1 with the first
refusals when any is refused."""
import json
import sys

from google.genai import types

decls = json.load(open(sys.argv[1]))
bad = []
for d in decls:
    try:
        types.FunctionDeclaration.model_validate(d)
    except Exception as e:  # pydantic's ValidationError, or anything else it raises
        bad.append((d.get("name"), str(e)[:500]))
print(f"{len(decls) - len(bad)} of {len(decls)} accepted")
for name, err in bad[:10]:
    print(f"refused {name}: {err}")
sys.exit(1 if bad else 0)
