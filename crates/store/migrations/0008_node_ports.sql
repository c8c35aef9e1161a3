-- Engines that listen on more than one port (RabbitMQ: AMQP, management,
-- distribution, its port mapper) keep the others here, comma-separated, in the
-- order the engine names them; `port` stays the one applications connect to.
ALTER TABLE nodes ADD COLUMN extra_ports TEXT NOT NULL DEFAULT '';
