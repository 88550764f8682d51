/** Previews in the editor: an image (from a blob URL, so an SVG's script never runs) and rendered, sanitized Markdown. */
import { useEffect, useMemo, useState } from "react";
import { errorMessage } from "../api/errors";
import { fetchBytes } from "../api/ide";
import { imageType, renderMarkdown } from "../modules/preview/preview";
import { Spinner } from "./PageStates";

type ImageState = { status: "loading" } | { status: "error"; message: string } | { status: "ready"; url: string; size: number };

export function ImagePreview({ uuid, path, version }: { uuid: string; path: string; version: number }) {
  const [state, setState] = useState<ImageState>({ status: "loading" });
  const [dims, setDims] = useState<string>("");
  useEffect(() => {
    let url: string | null = null;
    let cancelled = false;
    setState({ status: "loading" });
    fetchBytes(uuid, path).then(
      (blob) => {
        if (cancelled) return;
        // The type is ours, from the extension: never the server's or a sniffed one.
        url = URL.createObjectURL(new Blob([blob], { type: imageType(path) ?? "application/octet-stream" }));
        setState({ status: "ready", url, size: blob.size });
      },
      (err: unknown) => !cancelled && setState({ status: "error", message: errorMessage(err) }),
    );
    return () => {
      cancelled = true;
      if (url) URL.revokeObjectURL(url);
    };
  }, [uuid, path, version]);
  if (state.status === "loading") return <Spinner label={`Loading ${path}`} />;
  if (state.status === "error") return <div role="alert">{state.message}</div>;
  return (
    <figure className="image-preview">
      <img src={state.url} alt={path} onLoad={(e) => setDims(`${e.currentTarget.naturalWidth} × ${e.currentTarget.naturalHeight}`)} />
      <figcaption>
        {path} · {dims ? `${dims} · ` : ""}
        {state.size.toLocaleString()} bytes
      </figcaption>
    </figure>
  );
}

export function MarkdownPreview({ source }: { source: string }) {
  const html = useMemo(() => renderMarkdown(source), [source]);
  // Sanitized by renderMarkdown (DOMPurify); the page's CSP blocks inline script as a second wall.
  return <article className="markdown-preview" aria-label="Markdown preview" dangerouslySetInnerHTML={{ __html: html }} />;
}
