/**
 * Two panes with a draggable, keyboard-operable separator. `size` is the first pane's size in pixels
 * (or the second pane's with `sizeSecond`), persisted under `storageKey`.
 */
import { useCallback, useEffect, useRef, useState, type KeyboardEvent, type PointerEvent, type ReactNode } from "react";
import { clampSize, loadSize, saveSize } from "../modules/layout/splitSize";

interface SplitterProps {
  direction: "horizontal" | "vertical";
  storageKey: string;
  defaultSize: number;
  min: number;
  max: number;
  /** The fixed-size pane is the second one (e.g. the terminal below the editor). */
  sizeSecond?: boolean;
  label: string;
  first: ReactNode;
  second: ReactNode;
  onResize?: () => void;
}

export function Splitter(props: SplitterProps) {
  const { direction, storageKey, defaultSize, min, max, sizeSecond, onResize } = props;
  const [size, setSize] = useState(() => loadSize(storageKey, defaultSize));
  const containerRef = useRef<HTMLDivElement>(null);
  const drag = useRef<{ start: number; startSize: number } | null>(null);
  const horizontal = direction === "horizontal";

  const total = () => {
    const el = containerRef.current;
    return el ? (horizontal ? el.clientWidth : el.clientHeight) : 10_000;
  };

  const apply = useCallback(
    (next: number) => {
      const s = clampSize(next, min, max, total());
      setSize(s);
      return s;
    },
    [min, max, horizontal],
  );

  useEffect(() => {
    onResize?.();
  }, [size, onResize]);

  const onPointerDown = (e: PointerEvent<HTMLDivElement>) => {
    e.preventDefault();
    e.currentTarget.setPointerCapture(e.pointerId);
    drag.current = { start: horizontal ? e.clientX : e.clientY, startSize: size };
    document.body.style.cursor = horizontal ? "col-resize" : "row-resize";
    document.body.style.userSelect = "none";
  };
  const onPointerMove = (e: PointerEvent<HTMLDivElement>) => {
    if (!drag.current) return;
    const delta = (horizontal ? e.clientX : e.clientY) - drag.current.start;
    apply(drag.current.startSize + (sizeSecond ? -delta : delta));
  };
  const onPointerUp = (e: PointerEvent<HTMLDivElement>) => {
    if (!drag.current) return;
    drag.current = null;
    e.currentTarget.releasePointerCapture(e.pointerId);
    document.body.style.cursor = "";
    document.body.style.userSelect = "";
    saveSize(storageKey, size);
  };
  const onKeyDown = (e: KeyboardEvent<HTMLDivElement>) => {
    const step = e.shiftKey ? 50 : 10;
    const grow = horizontal ? ["ArrowRight"] : ["ArrowDown"];
    const shrink = horizontal ? ["ArrowLeft"] : ["ArrowUp"];
    let next: number | null = null;
    if (grow.includes(e.key)) next = size + (sizeSecond ? -step : step);
    else if (shrink.includes(e.key)) next = size + (sizeSecond ? step : -step);
    else if (e.key === "Home") next = min;
    else if (e.key === "End") next = max;
    if (next !== null) {
      e.preventDefault();
      saveSize(storageKey, apply(next));
    }
  };

  const fixed = { flex: `0 0 ${size}px`, minWidth: 0, minHeight: 0 };
  const fluid = { flex: "1 1 0", minWidth: 0, minHeight: 0 };
  return (
    <div ref={containerRef} className={`split split-${direction}`}>
      <div className="split-pane" style={sizeSecond ? fluid : fixed}>
        {props.first}
      </div>
      <div
        className="split-handle"
        role="separator"
        tabIndex={0}
        aria-label={props.label}
        aria-orientation={horizontal ? "vertical" : "horizontal"}
        aria-valuenow={size}
        aria-valuemin={min}
        aria-valuemax={max}
        onPointerDown={onPointerDown}
        onPointerMove={onPointerMove}
        onPointerUp={onPointerUp}
        onPointerCancel={onPointerUp}
        onKeyDown={onKeyDown}
      />
      <div className="split-pane" style={sizeSecond ? fixed : fluid}>
        {props.second}
      </div>
    </div>
  );
}
