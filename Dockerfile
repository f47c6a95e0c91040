# The Usher image: `usher` (controller, auth server, CLI) and `usher-webhook`, statically linked
# (musl), on an empty base, running as a non-root user. Build: docker build -t usher:dev .
FROM docker.io/library/rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
# The default features leave out `usher dev` (feature `dev`) and the local control plane it starts.
RUN cargo build --release --locked --target x86_64-unknown-linux-musl \
      -p usher-operator -p usher-webhook --bin usher --bin usher-webhook \
 && mkdir /out \
 && cp target/x86_64-unknown-linux-musl/release/usher target/x86_64-unknown-linux-musl/release/usher-webhook /out/ \
 && ln -s usher /out/kubectl-usher

FROM scratch
# TLS roots for the SMTP relay (kube uses the cluster CA from the service account).
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/ /usr/local/bin/
# 65532: the conventional "nonroot" user; no shell, no package manager, nothing writable needed.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/usher"]
CMD ["--help"]
