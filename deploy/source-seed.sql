-- A small shop for the sample `source` database of docker-compose.yml: a few related tables,
-- a sequence-backed key, a jsonb column and enough rows for a backup to show progress.
CREATE TABLE customer (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email      text NOT NULL UNIQUE,
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE product (
    id          serial PRIMARY KEY,
    sku         text NOT NULL UNIQUE,
    title       text NOT NULL,
    price_cents integer NOT NULL CHECK (price_cents >= 0),
    attributes  jsonb NOT NULL DEFAULT '{}'
);

CREATE TABLE orders (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customer (id),
    placed_at   timestamptz NOT NULL
);

CREATE TABLE order_line (
    order_id   bigint NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    product_id integer NOT NULL REFERENCES product (id),
    quantity   integer NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_id, product_id)
);

INSERT INTO customer (email, name)
SELECT 'customer' || g || '@example.com', 'Customer ' || g FROM generate_series(1, 2000) g;

INSERT INTO product (sku, title, price_cents, attributes)
SELECT 'SKU-' || lpad(g::text, 5, '0'), 'Product ' || g, 100 + (g * 37) % 9900,
       jsonb_build_object('colour', (ARRAY['red', 'green', 'blue'])[1 + g % 3], 'weight_g', g % 500)
FROM generate_series(1, 500) g;

INSERT INTO orders (customer_id, placed_at)
SELECT 1 + (g * 7919) % 2000, timestamptz '2026-01-01' + g * interval '7 minutes'
FROM generate_series(1, 20000) g;

INSERT INTO order_line (order_id, product_id, quantity)
SELECT o.id, 1 + (o.id + k * 167) % 500, k
FROM orders o, generate_series(1, 3) k;

CREATE INDEX order_line_product ON order_line (product_id);
CREATE INDEX orders_customer ON orders (customer_id, placed_at);
