"""The operator's token: load and unload answer only the bearer of DETECTOR_ADMIN_TOKEN, and say how to enable them."""

from __future__ import annotations

import pytest

from common.errors import Forbidden
from serving.operator import check_operator


def test_without_a_configured_token_every_caller_is_refused_with_how_to_enable():
    for presented in (None, "", "Bearer ", "Bearer anything"):
        with pytest.raises(Forbidden, match="disabled.*DETECTOR_ADMIN_TOKEN") as refused:
            check_operator("", presented)
        assert refused.value.http_status == 403 and refused.value.grpc_status == "PERMISSION_DENIED"


@pytest.mark.parametrize("presented", [None, "", "s3cret", "Basic s3cret", "Bearer s3cre", "Bearer s3cret2",
                                       "Bearer S3CRET", "Bearers3cret"])
def test_anything_but_the_bearer_token_is_refused(presented):
    with pytest.raises(Forbidden, match="needs the operator's token"):
        check_operator("s3cret", presented)


@pytest.mark.parametrize("presented", ["Bearer s3cret", "bearer s3cret", "  Bearer   s3cret "])
def test_the_bearer_token_passes(presented):
    check_operator("s3cret", presented)
