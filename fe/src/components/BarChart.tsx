// A small SVG bar chart drawn here (no chart library, nothing fetched).
export interface Bar {
  label: string;
  value: number;
}

export function BarChart(props: {
  title: string;
  bars: Bar[];
  format: (n: number) => string;
  end?: string;
  /** what the caption states instead of the sum of the bars (a percentile does not add up) */
  summary?: string;
}) {
  const { title, bars, format, end, summary } = props;
  const width = 320;
  const height = 120;
  const max = Math.max(0, ...bars.map((b) => b.value));
  const slot = bars.length ? width / bars.length : width;
  const total = bars.reduce((s, b) => s + b.value, 0);
  return (
    <figure className="chart">
      <figcaption>
        {title} <strong>{summary ?? format(total)}</strong>
      </figcaption>
      <svg
        viewBox={`0 0 ${width} ${height}`}
        role="img"
        aria-label={`${title}: ${bars.map((b) => `${b.label} ${format(b.value)}`).join(", ")}`}
      >
        <line x1="0" y1={height - 0.5} x2={width} y2={height - 0.5} className="axis" />
        {bars.map((b, i) => {
          const h = max > 0 ? (b.value / max) * (height - 4) : 0;
          return (
            <rect
              key={b.label}
              x={i * slot + 1}
              y={height - h}
              width={Math.max(slot - 2, 1)}
              height={h}
              className="bar"
            >
              <title>{`${b.label}: ${format(b.value)}`}</title>
            </rect>
          );
        })}
      </svg>
      {bars.length > 0 && (
        <div className="chart-range">
          <span>{bars[0].label}</span>
          <span>{end ?? bars[bars.length - 1].label}</span>
        </div>
      )}
    </figure>
  );
}
