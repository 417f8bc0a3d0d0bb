DROP TABLE outbox; DROP TABLE settings;
