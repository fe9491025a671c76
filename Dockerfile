# For people with Docker (`docker buildx build --platform linux/amd64,linux/arm64 .`).
# Without Docker, `make image` builds the same image (an OCI layout in
# bin/image, with SBOMs) and is what the e2e tests run.
#
# The binary is built by the Makefile's own `binary` target, so its flags
# (CGO off, -trimpath, -buildvcs=false, -ldflags with the version) come from
# the one GOBUILD line both share; e2e/tools/image/dockerfile_test.go fails
# if this file starts building the binary any other way.
FROM --platform=$BUILDPLATFORM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY Makefile ./
COPY cmd/ cmd/
COPY pkg/ pkg/
ARG TARGETOS=linux
ARG TARGETARCH=amd64
ARG VERSION=dev
RUN GOOS=${TARGETOS} GOARCH=${TARGETARCH} make binary VERSION=${VERSION} OUT=/out/aws-auth-webhook

# distroless static, nonroot variant (uid 65532), pinned by digest: no
# shell, no package manager, no libc. make image's offline base holds the
# same files.
FROM gcr.io/distroless/static-debian12:nonroot@sha256:d093aa3e30dbadd3efe1310db061a14da60299baff8450a17fe0ccc514a16639
ARG VERSION=dev
ARG REVISION=""
LABEL org.opencontainers.image.title="aws-auth-webhook" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/aws-auth-webhook/aws-auth-webhook"
COPY --from=build /out/aws-auth-webhook /aws-auth-webhook
USER 65532:65532
ENTRYPOINT ["/aws-auth-webhook"]
CMD ["serve"]
