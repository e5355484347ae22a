import { useEffect, useRef } from "react";
import Sortable from "sortablejs";

// Drag to rank, with a mouse or a finger (SortableJS handles touch). React owns the order: after a drop the
// moved node is put back where it was and only the (from, to) indices go to the server, which reorders the
// ballot; React then renders the new order itself, so the DOM never disagrees with the state. (Reflex passes a ref
// of its own; this component keeps the one SortableJS needs.)
export function SortableList({ onMove, children, ref: _reflexRef, ...rest }) {
  const ref = useRef(null);
  const onMoveRef = useRef(onMove);
  onMoveRef.current = onMove;
  useEffect(() => {
    const sortable = Sortable.create(ref.current, {
      animation: 150,
      handle: ".drag-handle",
      forceFallback: true, // the same pointer-driven drag with a mouse and on a touch screen
      onEnd: (evt) => {
        const { item, from, oldIndex, newIndex } = evt;
        if (oldIndex === newIndex) return;
        from.removeChild(item);
        from.insertBefore(item, from.children[oldIndex] ?? null);
        onMoveRef.current?.(oldIndex, newIndex);
      },
    });
    return () => sortable.destroy();
  }, []);
  return (
    <div {...rest} ref={ref}>
      {children}
    </div>
  );
}
