/** The API's message for the form it sits in (a 400 or 409 names the field). */
export function FormAlert(props: { error: string | null }) {
  if (!props.error) return null;
  return (
    <p role="alert" className="error form-alert">
      {props.error}
    </p>
  );
}
