module onus.dev/benches/admission/driver

go 1.22
