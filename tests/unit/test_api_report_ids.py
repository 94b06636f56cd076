"""`doctor --api-report` hides every account and business id the login showed it, not only
the current account's: another business's id as a key or a path segment is hidden too."""

import json

import requests

from fbstampli.freshbooks.api_report import Recorder

API = "https://api.freshbooks.example"
IDENTITY = {
    "response": {
        "business_memberships": [
            {"business": {"id": 111000, "account_id": "ALPHA1", "name": "Alpha"}},
            {"business": {"id": 222000, "account_id": "beta22", "business_uuid": "u-7f3e"}},
        ]
    }
}


def answered(url: str, body: object) -> requests.Response:
    response = requests.Response()
    response.url = url
    response.status_code = 200
    response._content = json.dumps(body).encode()
    response.request = requests.Request("GET", url).prepare()
    return response


def test_every_account_and_business_id_seen_is_hidden_wherever_it_appears() -> None:
    recorder = Recorder("ALPHA1")
    # An id used before the body that names it, as a path segment and as keys:
    recorder.hook(answered(f"{API}/accounting/account/beta22/bills/bills", {"beta22": {}}))
    recorder.hook(answered(f"{API}/auth/api/v1/users/me", IDENTITY))
    recorder.hook(
        answered(
            f"{API}/accounting/account/ALPHA1/bills/bills",
            {"response": {"result": {"222000": 1, "u-7f3e": 2, "beta22": 3, "bills": []}}},
        )
    )
    text = json.dumps(recorder.sanitised({"probes": recorder.exchanges}))
    for secret in ("ALPHA1", "beta22", "BETA22", "222000", "111000", "u-7f3e"):
        assert secret.casefold() not in text.casefold(), secret  # once: beta22 showed
    assert "/accounting/account/{account_id}/bills/bills" in text
    assert "/accounting/account/{other_id}/bills/bills" in text
