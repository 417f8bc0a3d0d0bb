DROP TABLE events, refunds, payment_applications, payments;
