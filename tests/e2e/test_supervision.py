"""A process that dies comes back by itself, in every way the system runs: natively
supervisord restarts it (scripts/native_supervisor.py), under compose Docker's
`restart: unless-stopped`, in Kubernetes the kubelet. A relay that died and stayed
dead once stopped every order from settling (docs/failures.md)."""

import os

import pytest

from tests.support import eventually

pytestmark = pytest.mark.e2e

PROCESSES = [
    "orders-relay",
    "products-worker",
    "orders",
    pytest.param(
        "gateway",
        marks=pytest.mark.skipif(
            os.environ.get("SHOP_STACK") == "docker",
            reason="under compose Kong's nginx is its container's PID 1, which nothing inside may SIGKILL, and "
            "`docker kill` counts as a deliberate stop; the restart policy is Docker's, shown by the others",
        ),
    ),
]


@pytest.mark.parametrize("process", PROCESSES)
def test_a_process_killed_by_sigkill_restarts_by_itself_and_work_goes_on(stack, shop, process):
    died = stack.crash(process)

    eventually(lambda: stack.restarted_since(process, died), deadline=60, interval=0.5)
    product = shop.create_product(quantity=3)["id"]
    order_id = shop.order(product)
    assert shop.settle([order_id]) == {order_id: "CONFIRMED"}
    assert shop.stock(product) == 2
