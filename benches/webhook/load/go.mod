module onus.dev/benches/webhook/load

go 1.22
