# syntax=docker/dockerfile:1
#
# groupwarden in a small, non-root image.
#
#   docker build -t groupwarden .
#   docker run --rm -v "$PWD/groupwarden.toml:/etc/groupwarden/groupwarden.toml:ro" \
#     -v "$PWD/state:/var/lib/groupwarden" -e AZURE_CLIENT_SECRET groupwarden scan --output /var/lib/groupwarden/findings.json
#
# The default command is the daemon (`groupwarden run`), reading
# /etc/groupwarden/groupwarden.toml. Secrets are never part of the image:
# mount them as files or pass them as environment variables at run time.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# Cache mounts keep the registry and build output between builds; the
# binary is copied out because the target cache is not part of the layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin groupwarden \
    && install -D -m 0755 target/release/groupwarden /out/groupwarden \
    && strip /out/groupwarden

# glibc, CA certificates and time zones, no shell, no package manager;
# runs as uid 65532 (nonroot).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/groupwarden /usr/local/bin/groupwarden
COPY --from=build /src/rules /usr/share/groupwarden/rules
ENV GROUPWARDEN_CONFIG=/etc/groupwarden/groupwarden.toml
# The config is mounted read-only; the state lives on the data volume
# unless the config's [state] path says otherwise.
ENV GROUPWARDEN_STATE=/var/lib/groupwarden/groupwarden.db
WORKDIR /var/lib/groupwarden
USER 65532:65532
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/groupwarden"]
CMD ["run"]
