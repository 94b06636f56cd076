"""The FreshBooks API client, as a package: `session` (requests, retries, token refresh,
paging), `errors` (answers mapped to errors), `listings` (newest-first listings and their
sort checks) and `endpoints` (objects by id, identity, webhook callbacks).
"""

from fbstampli.freshbooks.client.endpoints import FreshBooksClient
from fbstampli.freshbooks.client.errors import MAX_RETRY_AFTER, BadRequestError, NotFoundError
from fbstampli.freshbooks.client.session import (
    MAX_REREADS,
    PER_PAGE,
    AccessTokens,
    PageCallback,
    PageProgress,
)

__all__ = [
    "MAX_REREADS",
    "MAX_RETRY_AFTER",
    "PER_PAGE",
    "AccessTokens",
    "BadRequestError",
    "FreshBooksClient",
    "NotFoundError",
    "PageCallback",
    "PageProgress",
]
