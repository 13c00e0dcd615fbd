"""The shop's shared language: the events the services tell each other, and
the queues they travel by. This is the catalogue, the one place it is written
(tests/test_event_catalogue.py holds the code to it):

    event               v  producer  queue                     consumer         handler
    order.created       2  orders    products.order-created    products-worker  products.inventory.reserve_stock
    order.cancelled     1  orders    products.order-created    products-worker  products.inventory.release_stock
    inventory.reserved  1  products  orders.inventory-results  orders-worker    orders.settlement.settle
    inventory.rejected  1  products  orders.inventory-results  orders-worker    orders.settlement.settle

Each event's fields are in contracts.py, its queue in queues.py. A producer adds
the events it announces to its outbox in the transaction of the change they
announce (common/messaging/outbox.py); its relay publishes them; the consumer
applies each once (common/messaging/consumer.py). How to add one: CONTRIBUTING.md.

The machinery all this runs on, which names no event or queue of the shop, is
common/messaging/.
"""
