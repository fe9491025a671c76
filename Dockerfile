# Mirrors `make build` exactly: CGO off, -trimpath, the same ldflags; the
# e2e tests run the binary this produces. No Docker engine runs in CI, so
# this file stays minimal and is kept in step with the Makefile's GOBUILD.
FROM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY cmd/ cmd/
COPY pkg/ pkg/
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/aws-auth-webhook/aws-auth-webhook/cmd/aws-auth-webhook/app.version=${VERSION}" \
      -o /out/aws-auth-webhook ./cmd/aws-auth-webhook

# distroless static, nonroot variant (uid 65532), pinned by digest: no
# shell, no package manager, no libc.
FROM gcr.io/distroless/static-debian12:nonroot@sha256:d093aa3e30dbadd3efe1310db061a14da60299baff8450a17fe0ccc514a16639
COPY --from=build /out/aws-auth-webhook /aws-auth-webhook
USER 65532:65532
ENTRYPOINT ["/aws-auth-webhook"]
CMD ["serve"]
