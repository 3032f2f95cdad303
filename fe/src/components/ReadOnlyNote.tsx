import type { AccessState } from "./useAccess";

/** Says why a page offers no forms: the signed-in key may only read, or the
 *  gateway could not say what it may do. */
export function ReadOnlyNote(props: AccessState) {
  if (props.canWrite) return null;
  if (props.problem)
    return (
      <p className="note read-only">
        The gateway could not say what this key may change ({props.problem}), so no changes are offered.
      </p>
    );
  if (props.access === null) return null;
  return (
    <p className="note read-only">
      Signed in with a {props.access} key: this page is read-only here (changes need the admin key).
    </p>
  );
}
